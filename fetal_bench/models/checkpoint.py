"""Checkpoints: a directory with ``model.safetensors`` and ``config.json``.

``config.json``::

    {"model": "unet",                      # registry name
     "cfg": {...},                         # builder options that rebuild the structure
     "spec": {...},                        # ModelSpec (what the harness reads)
     "training": {"task": ..., "training_data": "real"|"synthetic"|"hybrid",
                  "synthetic_share": 0.0, "epochs": ..., "best_metric": ..., ...},
     "run_name": "...",
     "format_version": 1, "fetal_bench_version": "..."}

Weights are safetensors only (no pickle), written through
:func:`safetensors.torch.save_model`, which also copes with tied tensors (transformers' SAM ties
two positional embeddings). Both files are replaced atomically, weights first, so a reader never
sees a config that describes weights not yet written.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fetal_bench._io import write_json_atomic
from fetal_bench.errors import FetalBenchError
from fetal_bench.models.registry import CONFIG_NAME, WEIGHTS_NAME

if TYPE_CHECKING:
    import torch

__all__ = ["checkpoint_config", "load_weights", "save_checkpoint"]

FORMAT_VERSION = 1


def checkpoint_config(model: torch.nn.Module, *, training: dict[str, Any] | None = None,
                      run_name: str | None = None) -> dict[str, Any]:
    from fetal_bench import __version__

    return {
        "model": model.model_name,
        "cfg": _jsonable(model.model_cfg),
        "spec": _jsonable(model.spec.to_dict()),
        "training": _jsonable(training or {}),
        "run_name": run_name,
        "format_version": FORMAT_VERSION,
        "fetal_bench_version": __version__,
    }


def save_checkpoint(model: torch.nn.Module, directory: str | os.PathLike, *, training: dict[str, Any] | None = None,
                    run_name: str | None = None) -> Path:
    """Write ``model`` (made by :func:`~fetal_bench.models.create_model`) as a checkpoint directory."""
    from safetensors.torch import save_model

    if not hasattr(model, "model_name"):
        raise FetalBenchError("This model was not made by fetal_bench.models.create_model.",
                              "Create it with create_model(NAME, ...) so that it can be rebuilt from its config.")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = checkpoint_config(model, training=training, run_name=run_name)
    # save_model writes by path, so the atomic rename is done here rather than by _io.atomic_file.
    fd, tmp = tempfile.mkstemp(prefix=f".{WEIGHTS_NAME}.", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        save_model(_unwrap(model), tmp, metadata={"format": "pt", "model": model.model_name})
        os.chmod(tmp, 0o644)
        os.replace(tmp, directory / WEIGHTS_NAME)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    write_json_atomic(directory / CONFIG_NAME, config)
    return directory


def load_weights(model: torch.nn.Module, path: str | os.PathLike) -> None:
    """Load a safetensors file into ``model`` strictly, with a clear error on any mismatch."""
    from safetensors.torch import load_model

    try:
        missing, unexpected = load_model(_unwrap(model), str(path), strict=False)
    except Exception as err:  # shape mismatches surface here as RuntimeError
        raise FetalBenchError(f"The weights in {path} do not fit the model built from its config: {err}",
                              "Was the checkpoint made by another fetal-bench version, or were cfg options overridden?") from err
    if missing or unexpected:
        raise FetalBenchError(
            f"The weights in {path} do not fit the model: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}.",
            "Was the checkpoint made by another fetal-bench version, or were cfg options overridden?")


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    # accelerate/DDP wrap the module; the checkpoint holds the bare one's names.
    return getattr(model, "module", model)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value
