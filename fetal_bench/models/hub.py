"""``huggingface_hub.PyTorchModelHubMixin`` for every registered model class.

Each model class (U-Net, the torchvision classifiers, the LoRA classifiers, SAM, SonoNet-16)
mixes in :class:`FetalBenchModel`, so a model saves, publishes and loads the Hub way::

    model.save_pretrained("runs/unet")                 # config.json + weights + README.md card
    model.push_to_hub("org/fetal-unet")                # the same files, uploaded
    UNetSegmenter.from_pretrained("org/fetal-unet@v1") # or a local directory

The Mixin's plumbing is kept (``save_pretrained`` stages files, ``push_to_hub`` uploads them);
what it writes is :mod:`fetal_bench.models.checkpoint`'s layout, and loading goes through
:func:`fetal_bench.models.builder.load_checkpoint`, which rebuilds the model from the registry
(the Mixin's own ``from_pretrained`` would call the class's ``__init__`` with the config's keys,
and our models are made by builder functions, not by their constructors).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, PyTorchModelHubMixin

from fetal_bench.errors import FetalBenchError
from fetal_bench.models.builder import load_checkpoint
from fetal_bench.models.checkpoint import checkpoint_config, model_card_text, write_weights

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
        card = {"checkpoint_config": config, **(model_card_kwargs or {})}
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

    def generate_model_card(self, *args: Any, checkpoint_config: dict | None = None, **kwargs: Any) -> ModelCard:
        """fetal-bench's card (:func:`~fetal_bench.models.checkpoint.model_card_text`), written from
        the same config as ``config.json`` rather than from the Mixin's template."""
        return ModelCard(model_card_text(checkpoint_config if checkpoint_config is not None else _config_of(self)))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *, revision: str | None = None,
                        **cfg: Any):
        """Load a checkpoint directory or Hub repository (``org/name``, ``org/name@revision``) in
        eval mode. ``cfg`` overrides builder options, as for ``create_model``."""
        model, checkpoint = load_checkpoint(pretrained_model_name_or_path, revision=revision, **cfg)
        if not isinstance(model, cls):
            raise FetalBenchError(f"Checkpoint {checkpoint.source} holds a {checkpoint.model!r} model "
                                  f"({type(model).__name__}), not a {cls.__name__}.",
                                  f"Load it with fetal_bench.models.load_checkpoint, or {type(model).__name__}.from_pretrained.")
        return model.eval()


def _config_of(model) -> dict:
    # generate_model_card's keyword is named checkpoint_config (save_pretrained's model_card_kwargs),
    # which hides the function of that name inside it.
    return checkpoint_config(model)
