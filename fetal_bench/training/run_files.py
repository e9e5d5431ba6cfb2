"""A training run's directory: its config, resumable snapshots, log and curves.

Output directory::

    OUT/config.json, weights, README.md      the checkpoint of the best validation (docs/checkpoints.md;
                                             create_model(..., checkpoint=OUT))
    OUT/train_config.json                    the TrainConfig of the run
    OUT/train_log.jsonl                      one JSON object per logged step, validation and epoch
    OUT/curves.png                           losses and the validation metric per epoch
    OUT/checkpoints/step-NNNNNNNN/           resumable state: weights, optimizer, RNG, counters
                                             (fetal_bench.training.rundir, shared with the generators)
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from fetal_bench.errors import FetalBenchError
from fetal_bench.training.config import RESUMABLE_CHANGES, TrainConfig
from fetal_bench.training.rundir import RunDirectory, Snapshot, fingerprint

__all__ = ["JsonlLog", "plot_curves_of", "prepare_output", "run_directory", "snapshot_loader", "snapshot_weights",
           "truncate_log"]


def run_directory(out: Path, config: TrainConfig) -> RunDirectory:
    """The run's snapshots, identified by the settings that may not change on resume (under the
    names runs recorded them with first, so a run begun before a field was renamed resumes)."""
    settings = {_FINGERPRINT_NAMES.get(k, k): v for k, v in config.to_dict().items() if k not in RESUMABLE_CHANGES}
    return RunDirectory(out, fingerprint=fingerprint(settings), keep_last=1)


#: TrainConfig field -> the name run fingerprints have used for it (TrainConfig.config became data_config).
_FINGERPRINT_NAMES = {"data_config": "config"}


def prepare_output(out: Path, config: TrainConfig) -> Snapshot | None:
    """Create/clean ``out``; return the snapshot to resume from, when resuming."""
    # A run that failed before its first checkpoint left only its config/log: start it afresh.
    never_checkpointed = out.is_dir() and {p.name for p in out.iterdir()} <= {"train_config.json", "train_log.jsonl"}
    if out.exists() and (config.overwrite or never_checkpointed):
        shutil.rmtree(out)
    if out.exists() and any(out.iterdir()):
        if config.resume and (out / "train_config.json").is_file():
            saved = TrainConfig.from_dict(_read_json(out / "train_config.json")).to_dict()
            current = config.to_dict()
            changed = sorted(k for k in set(saved) | set(current)
                             if k not in RESUMABLE_CHANGES and saved.get(k) != current.get(k))
            if changed:
                raise FetalBenchError(
                    f"{out} holds a run with other settings ({', '.join(f'{k}: {saved.get(k)!r} -> {current.get(k)!r}' for k in changed[:4])}).",
                    "Resume with the same options, or pass --overwrite (or another --output) to start a new run.")
        latest = run_directory(out, config).latest()
        if latest is None or not config.resume:
            what = ""
            if (out / "last" / "state.json").is_file():
                what = " and holds a run of an older fetal-bench (OUT/last), which cannot be resumed"
            elif latest is None:
                what = " and holds no resumable run"
            raise FetalBenchError(f"Output directory {out} already exists{what}.",
                                  "Choose another --output, or pass --overwrite to start over.")
        return latest
    out.mkdir(parents=True, exist_ok=True)
    return None


def _read_json(path: Path) -> dict[str, Any]:
    """A run directory's JSON record, or a clean error when it is missing or damaged."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FetalBenchError(f"Cannot resume: {path} is unreadable ({type(err).__name__}).",
                              "Pass --overwrite to start the run over, or choose another --output.") from None
    if not isinstance(value, dict):
        raise FetalBenchError(f"Cannot resume: {path} is not a JSON object.",
                              "Pass --overwrite to start the run over, or choose another --output.")
    return value


class JsonlLog:
    def __init__(self, path: Path, *, enabled: bool):
        self.path = path
        self.enabled = enabled

    def write(self, entry: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in entry.items()}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(clean) + "\n")


def truncate_log(path: Path, step: int) -> None:
    """Drop log lines written after the checkpoint we resume from (they will be redone)."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step]
    from fetal_bench._io import atomic_file

    with atomic_file(path, "w", encoding="utf-8") as handle:
        handle.write("".join(line + "\n" for line in kept))


def _read_log(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_curves_of(out: Path) -> None:
    from fetal_bench.training.plots import plot_curves

    entries = _read_log(out / "train_log.jsonl")
    steps_per_epoch = None
    epochs = [e for e in entries if e["type"] == "epoch"]
    if epochs:
        steps_per_epoch = max(1, epochs[0]["step"])  # x in epochs for validations made mid-epoch

    def x_of(entry):
        return entry["step"] / steps_per_epoch if steps_per_epoch else entry["epoch"]

    validations = [e for e in entries if e["type"] == "validation"]
    metric = next((k for k in ("dice", "accuracy") if validations and k in validations[0]), None)
    panels = [
        ("loss", {"train": [(e["epoch"], e["train_loss"]) for e in epochs],
                  "validation": [(x_of(e), e["loss"]) for e in validations]}),
    ]
    if metric:
        series = {f"val {metric}": [(x_of(e), e[metric]) for e in validations]}
        if "macro_f1" in validations[0]:
            series["val macro_f1"] = [(x_of(e), e["macro_f1"]) for e in validations]
        panels.append((f"validation {metric}", series))
    plot_curves(out / "curves.png", panels, xlabel="epoch", title=out.name)


def snapshot_weights(model, adapter_only: bool):
    """What a training snapshot keeps: the whole model, or (adapter models) its trainable
    parameters and its buffers (e.g. normalisation statistics, which train mode updates)."""
    if not adapter_only:
        return model
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    buffers = {name for name, _ in model.named_buffers()}
    return {name: tensor for name, tensor in model.state_dict().items() if name in trainable | buffers}


def snapshot_loader(model, adapter_only: bool):
    """The counterpart of :func:`snapshot_weights` for :meth:`RunDirectory.restore`."""
    if not adapter_only:
        return model

    def load(tensors: dict) -> None:
        frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        stray = sorted(set(missing) - frozen) + sorted(unexpected)
        if stray:
            raise KeyError(f"the snapshot does not fit the model: {stray[:5]}")

    return load

