"""The builder: creates registered models and restores them from checkpoints.

Dependencies run one way: this module reads the registry (plain data) and the checkpoint files
(:mod:`fetal_bench.models.checkpoint`, which knows their layout); neither imports it back.

``create_model(name, checkpoint=None, **cfg)`` calls the entry's builder with
``defaults | cfg``; given a checkpoint it restores it:

* a checkpoint directory or a Hub repository (``org/name[@revision]``,
  :func:`load_checkpoint`): the model is rebuilt from its recorded configuration, then
  - full weights: built *without* fetching pretrained weights, then loaded strictly;
  - a LoRA adapter: the frozen base is built from its registered source (torchvision's cache,
    the user's FetalCLIP file), checked against the sha256 the checkpoint recorded, and the
    adapter applied;
* a single file (``SonoNet16.npz``, SAM's official ``.pth``): handed to the builder as its
  ``weights`` argument; each builder accepts only its own published format.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fetal_bench.errors import FetalBenchError
from fetal_bench.models.checkpoint import Checkpoint, read_checkpoint, restore_weights
from fetal_bench.models.registry import get_model_info

if TYPE_CHECKING:
    import torch

__all__ = ["create_inference_model", "create_model", "load_checkpoint"]


def create_model(name: str, checkpoint: str | os.PathLike | None = None, *, revision: str | None = None,
                 **cfg: Any) -> torch.nn.Module:
    """Build registered model ``name``; restore ``checkpoint`` when given.

    Args:
        name: a registry name (``list_models()``).
        checkpoint: ``None`` (fresh model; pretrained weights where the entry has them), a
            checkpoint directory, a Hub repository id ``org/name[@revision]``, or a published
            weights file the model accepts (``.npz`` for SonoNet-16, ``.pth`` for SAM's
            segment-anything backend).
        revision: the Hub revision (branch, tag or commit) of a repository ``checkpoint``.
        **cfg: builder options overriding the defaults (e.g. ``labels=[...]``,
            ``image_size=(256, 384)``, ``pretrained=False``). With a checkpoint they override
            the recorded configuration; structural changes then fail to load.

    Returns:
        A ``torch.nn.Module`` with ``.spec`` (:class:`~fetal_bench.models.spec.ModelSpec`),
        ``.model_name`` and ``.model_cfg`` (the JSON-ready configuration that rebuilds it).
    """
    info = get_model_info(name)
    if checkpoint is None:
        return _finish(_build(info, **cfg), info.name)
    path = Path(checkpoint)
    if path.is_file():
        return _finish(_build(info, **{**cfg, "weights": path}), info.name)
    return load_checkpoint(checkpoint, revision=revision, model=name, **cfg)[0]


def load_checkpoint(reference: str | os.PathLike, *, revision: str | None = None, model: str | None = None,
                    download: dict[str, Any] | None = None, strict: bool = True,
                    **cfg: Any) -> tuple[torch.nn.Module, Checkpoint]:
    """The model in checkpoint ``reference`` (a directory, or a Hub repository
    ``org/name[@revision]``), and what the checkpoint says about it.

    ``model``: the registry name expected (an error names the one found otherwise). ``download``:
    keywords for the Hub download (``token``, ``cache_dir``, ``force_download``,
    ``local_files_only``; see :func:`~fetal_bench.models.checkpoint.read_checkpoint`). ``strict``:
    as for :func:`~fetal_bench.models.checkpoint.restore_weights`. ``cfg`` overrides recorded
    builder options.
    """
    checkpoint = read_checkpoint(reference, revision, download=download)
    try:
        info = get_model_info(checkpoint.model)
    except FetalBenchError:
        # Before comparing with --model: "use --model X" is no advice when X is no model here.
        raise FetalBenchError(
            f"Checkpoint {checkpoint.source} holds a model named {checkpoint.model[:100]!r}, which this fetal-bench "
            "does not know.",
            "Upgrade fetal-bench if the checkpoint comes from a newer version; otherwise its config.json is damaged "
            "(`fetal-bench models list` shows the known models).") from None
    if model is not None and checkpoint.model != model:
        raise FetalBenchError(f"Checkpoint {checkpoint.source} holds a {checkpoint.model!r} model, not {model!r}.",
                              f"Use --model {checkpoint.model}.")
    # A checkpoint's weights are its own files: a "weights" path in its config.json (which may come
    # from the Hub) never makes the builder read a file of this machine.
    recorded = {key: value for key, value in checkpoint.cfg.items() if key != "weights"}
    if checkpoint.weights == "full":
        # restore=True: build the structure only; pretrained weights would be overwritten anyway.
        built = _build(info, **{**recorded, **cfg, "restore": True})
    else:
        built = _build(info, **{**recorded, **_base_options(checkpoint), **cfg})
    restore_weights(built, checkpoint, strict=strict)
    # The checkpoint travels with the model to the caller: what was loaded, exactly (a Hub
    # branch may move on before anyone asks again).
    return _finish(built, info.name), checkpoint


def _build(info, **cfg: Any) -> torch.nn.Module:
    """``info.build(**cfg)`` after checking every option (a checkpoint's config.json and
    --model-opt come from outside) against the builder's annotations and size bounds: a wrong
    type or an absurd size is a message, not a traceback from torch or a 36 GB allocation."""
    import importlib

    from fetal_bench.models.options import check_options

    module_name, function_name = info.builder.split(":")
    check_options(info.name, getattr(importlib.import_module(module_name), function_name), {**info.defaults, **cfg})
    return info.build(**cfg)


def _base_options(checkpoint: Checkpoint) -> dict[str, Any]:
    """Builder options that make an adapter's frozen base from its registered source.

    The file path a local checkpoint keeps beside it (the user's own FetalCLIP file, never in
    config.json) is used when present; the base's environment variable, when set, wins.
    """
    base = checkpoint.base or {}
    options = dict(base.get("options") or {}) if isinstance(base.get("options"), dict) else {}
    options.pop("weights", None)  # a config.json names no local file (see checkpoint.LOCAL_OPTIONS_NAME)
    if isinstance(checkpoint.local_options.get("weights"), str):
        options["weights"] = checkpoint.local_options["weights"]
    variable = base.get("weights_env")
    if isinstance(variable, str) and re.fullmatch(r"FETAL_BENCH_[A-Z0-9_]{1,60}", variable) and os.environ.get(variable):
        options["weights"] = os.environ[variable]
    return options


def create_inference_model(name: str, checkpoint: str | os.PathLike | None = None, *,
                           random_init: bool = False, revision: str | None = None,
                           ) -> tuple[torch.nn.Module, Checkpoint | None]:
    """A model to predict with (``fetal-bench predict``, ``evaluate --model``), never silently
    untrained, and the :class:`Checkpoint` it was restored from (None for a published weights
    file or the model's own pretrained weights).

    With ``checkpoint``: as :func:`create_model`. Without one, a model whose published weights do
    the task (``pretrained_predictor``: SonoNet-16, SAM) loads them or raises a
    :class:`FetalBenchError` saying where the file goes; any other model has nothing trained to
    predict with and is refused. ``random_init=True`` builds it untrained on purpose, fetching
    nothing.
    """
    import warnings

    from fetal_bench.data.pinned_files import PretrainedWeightsWarning, weights_dir

    info = get_model_info(name)
    if checkpoint is not None and not Path(checkpoint).is_file():
        return load_checkpoint(checkpoint, revision=revision, model=name)
    if checkpoint is not None:
        return create_model(name, checkpoint=checkpoint), None
    if random_init:
        return create_model(name, **info.random_init), None
    untrained = "--random-init runs it untrained on purpose (its outputs are then meaningless)."
    if not info.pretrained_predictor:
        raise FetalBenchError(
            f"Model {name!r} has no trained weights without --checkpoint: it would predict with a random "
            f"{'head' if info.classifies else 'network'}.",
            f"Train it (fetal-bench train {name} --task TASK --output DIR) and pass --checkpoint DIR; {untrained}")
    with warnings.catch_warnings():
        # The builders fall back to random weights with this warning: here that is an error.
        warnings.simplefilter("error", PretrainedWeightsWarning)
        try:
            return create_model(name), None
        except PretrainedWeightsWarning as warning:
            # Only the builder's first sentence (what is missing): the rest is about its random fallback.
            said = re.split(r"(?<=[.;])\s+", str(warning))[0].rstrip(";.")
            fix = info.weights_fix.format(weights_dir=weights_dir())
            raise FetalBenchError(f"{name} predicts with its pretrained weights, which are not available: {said}.",
                                  f"{fix} {untrained}") from None


def _finish(model: torch.nn.Module, name: str) -> torch.nn.Module:
    if getattr(model, "spec", None) is None or not hasattr(model, "model_cfg"):
        raise TypeError(f"builder of {name!r} returned a model without spec/model_cfg")  # a bug, not user error
    model.model_name = name
    return model
