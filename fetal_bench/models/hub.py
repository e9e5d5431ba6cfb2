"""``huggingface_hub.PyTorchModelHubMixin`` for every registered model class.

Each model class (U-Net, the torchvision classifiers, the LoRA classifiers, SAM, SonoNet-16)
mixes in :class:`FetalBenchModel`, so a model saves, publishes and loads the Hub way::

    model.save_pretrained("runs/unet")                 # config.json + weights + README.md card
    model.push_to_hub("org/fetal-unet")                # the same files, uploaded
    UNetSegmenter.from_pretrained("org/fetal-unet", revision="v1", token=..., cache_dir=...,
                                  local_files_only=..., force_download=..., map_location="cuda")

The Mixin's plumbing is kept whole: ``save_pretrained`` stages files, ``push_to_hub`` uploads
them, and ``from_pretrained`` is the Mixin's own, with its keywords (``revision``, ``token``,
``cache_dir``, ``force_download``, ``local_files_only``, and PyTorch's ``map_location`` and
``strict``). Only its hooks are fetal-bench's: ``_save_pretrained`` writes
:mod:`fetal_bench.models.checkpoint`'s layout, and ``_from_pretrained`` loads through
:func:`fetal_bench.models.builder.load_checkpoint`, which rebuilds the model from the registry
(our models are made by builder functions, not by their constructors). Other keywords of
``from_pretrained`` are builder options, as for ``create_model``. The ``org/name@revision``
shorthand is for ``load_checkpoint`` and the CLI; ``from_pretrained`` takes ``revision=``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, PyTorchModelHubMixin

from fetal_bench.errors import FetalBenchError
from fetal_bench.models.builder import load_checkpoint
from fetal_bench.models.checkpoint import checkpoint_config, model_card, write_weights

__all__ = ["FetalBenchModel"]


class FetalBenchModel(
    PyTorchModelHubMixin,
    library_name="fetal-bench",
    repo_url="https://github.com/fetal-bench/fetal-bench",
    tags=["fetal-bench", "fetal-ultrasound"],
):
    """Hub saving and loading for a model made by :func:`~fetal_bench.models.create_model`
    (it carries ``model_name``, ``model_cfg`` and ``spec``)."""

    def save_pretrained(self, save_directory: str | Path, *, config: dict | None = None, repo_id: str | None = None,
                        push_to_hub: bool = False, model_card_kwargs: dict[str, Any] | None = None,
                        **push_to_hub_kwargs: Any) -> str | None:
        """The Mixin's ``save_pretrained`` with fetal-bench's ``config.json`` (not the
        constructor's arguments) and model card; :func:`~fetal_bench.models.save_checkpoint` adds
        training information and atomic replacement."""
        config = config if config is not None else checkpoint_config(self)
        card = {"checkpoint_config": config, **({"repo_id": repo_id} if repo_id else {}), **(model_card_kwargs or {})}
        # The Mixin calls _save_pretrained(directory) only: the weights' kind (full or adapter)
        # is the one this config says, so it is handed over here rather than recomputed.
        self._saving_config = config
        try:
            return super().save_pretrained(save_directory, config=config, repo_id=repo_id, push_to_hub=push_to_hub,
                                           model_card_kwargs=card, **push_to_hub_kwargs)
        finally:
            self._saving_config = None

    def _save_pretrained(self, save_directory: Path) -> None:
        write_weights(self, Path(save_directory), getattr(self, "_saving_config", None))

    def generate_model_card(self, *args: Any, checkpoint_config: dict | None = None, repo_id: str | None = None,
                            results: Any = (), license: str | None = None, **kwargs: Any) -> ModelCard:
        """fetal-bench's card (:func:`~fetal_bench.models.checkpoint.model_card`), written from
        the same config as ``config.json`` rather than from the Mixin's template (``repo_id``,
        ``results``, ``license``: as there; ``model_card_kwargs`` of ``save_pretrained``)."""
        return model_card(checkpoint_config if checkpoint_config is not None else _config_of(self), repo_id=repo_id,
                          results=results, license=license)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The Mixin's from_pretrained fills the constructor's arguments from config.json's keys of
        # the same names (and all of them for an __init__ taking **kwargs). Our constructors take
        # built modules and a ModelSpec, and config.json is the builder's record, not their
        # arguments: nothing is injected, so the keywords that reach _from_pretrained are the
        # caller's own (builder options).
        cls._hub_mixin_init_parameters = {}

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: str | None, cache_dir: str | os.PathLike | None,
                         force_download: bool, local_files_only: bool, token: str | bool | None,
                         map_location: str | Any = "cpu", strict: bool = True, **cfg: Any):
        """The Mixin's hook: the checkpoint directory or Hub repository ``model_id`` in eval mode.

        The download keywords go to ``snapshot_download``; ``map_location`` is the device the model
        ends on; ``strict`` is ``load_state_dict``'s (True here: a checkpoint that does not fit is
        an error); ``cfg`` overrides builder options, as for ``create_model``.
        """
        download = {"cache_dir": cache_dir, "force_download": force_download, "local_files_only": local_files_only,
                    "token": token}
        model, checkpoint = load_checkpoint(model_id, revision=revision, download=download, strict=strict, **cfg)
        if not isinstance(model, cls):
            raise FetalBenchError(f"Checkpoint {checkpoint.source} holds a {checkpoint.model!r} model "
                                  f"({type(model).__name__}), not a {cls.__name__}.",
                                  f"Load it with fetal_bench.models.load_checkpoint, or {type(model).__name__}.from_pretrained.")
        if map_location is not None and str(map_location) != "cpu":
            model.to(map_location)  # loaded on the CPU, as the Mixin's own _load_as_safetensor does
        return model.eval()


# FetalBenchModel.from_pretrained(...) loads any fetal-bench checkpoint (the subclasses' load theirs
# only): it, too, takes no constructor arguments from config.json (see __init_subclass__).
FetalBenchModel._hub_mixin_init_parameters = {}


def _config_of(model) -> dict:
    # generate_model_card's keyword is named checkpoint_config (save_pretrained's model_card_kwargs),
    # which hides the function of that name inside it.
    return checkpoint_config(model)
