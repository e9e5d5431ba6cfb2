"""What a training run is asked to do (:class:`TrainConfig`) and what it did (:class:`TrainResult`).

A config is resolved once, before anything runs (:func:`resolve_config`): the model's named
recipe fills what the user left unset, then its registered training defaults; impossible
settings fail here, with every problem named.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from fetal_bench.errors import FetalBenchError

__all__ = ["RESUMABLE_CHANGES", "TrainConfig", "TrainResult", "mixed_precision", "recipe_note", "resolve_config"]

#: Fields renamed since a run directory's train_config.json may have been written: old -> new.
_RENAMED = {"config": "data_config"}

# Fields that may change between an interrupted run and its resumption.
RESUMABLE_CHANGES = frozenset({"output", "max_minutes", "max_steps", "epochs", "num_workers", "progress", "resume",
                                "overwrite", "checkpoint_every_steps", "mixed_precision", "log_every_steps"})


@dataclass
class TrainConfig:
    """Everything a training run depends on (saved as ``train_config.json``).

    ``None`` for ``epochs``, ``optimizer``, ``lr``, ``weight_decay``, ``batch_size``,
    ``scheduler`` and ``grad_clip`` means the model's registered training default (``fetal-bench
    models list --json``; 20 epochs and gradient clipping at norm 1.0 unless the model says
    otherwise). ``grad_clip: 0`` trains without clipping, as the papers' authors do (FU-LoRA,
    SAM few-shot, FetalCLIP-IQA); ``mixed_precision: "no"`` trains in fp32. A model's ``recipe``
    fills ``image_size``, ``batch_size`` and ``model_cfg`` entries that are not given.

    ``max_minutes`` bounds the whole run, closing validation and saving included: a step is
    only started when it and the closing work still fit.
    """

    model: str
    task: str
    output: str
    data: str | None = None
    data_config: str | None = None  # the dataset config of ``data`` (default: the task's)
    train_split: str = "train"
    val_split: str | None = "validation"
    exclude_labels: tuple[str, ...] = ()
    real_list: str | None = None  # a named list of real rows (data.fu_lora_lists.REAL_LISTS)
    real_per_class: int | None = None
    real_n: int | None = None
    synthetic: str | None = None
    synthetic_config: str | None = None
    synthetic_ratio: float | None = None
    synthetic_per_class: int | None = None
    synthetic_n: int | None = None
    model_cfg: dict[str, Any] = field(default_factory=dict)
    recipe: str = "auto"  # a named recipe of the model ("cpu", "gpu"); "auto": "cpu" without a GPU
    image_size: tuple[int, int] | None = None
    init_from: str | None = None
    epochs: int | None = None
    max_steps: int | None = None
    max_minutes: float | None = None
    batch_size: int | None = None
    eval_batch_size: int | None = None
    optimizer: str | None = None
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float | None = None
    scheduler: str | None = None  # "cosine" | "none"
    warmup_steps: int = 0
    grad_clip: float | None = None  # max gradient norm; 0: no clipping; None: the model's default (1.0 unless it says)
    augment: str = "ultrasound"
    patience: int | None = 5
    keep: str = "best"  # "best" (on validation) or "last" (the final weights)
    min_delta: float = 0.0
    val_every_steps: int | None = None
    checkpoint_every_steps: int = 100
    log_every_steps: int = 10
    box_jitter: tuple[float, float] = (0.0, 20.0)
    seed: int = 0
    num_workers: int = 0
    mixed_precision: str = "auto"  # "auto": bf16 (else fp16) on a GPU, bf16 on a CPU with bf16 units, else fp32
    resume: bool = True
    overwrite: bool = False
    run_name: str | None = None
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))  # tuples -> lists, JSON-safe

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        data = {_RENAMED.get(k, k): v for k, v in data.items()}  # a train_config.json of an earlier version
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class TrainResult:
    output: Path
    model: str
    task: str
    metric: str
    best_metric: float | None
    best_epoch: int | None
    epochs_completed: int
    steps: int
    stopped_by: str
    train_time_s: float = 0.0
    resumed: bool = False
    n_train: int = 0
    training_data: str = "real"
    synthetic_share: float = 0.0
    recipe: str | None = None
    best_step: int | None = None
    partial_epoch_steps: int = 0  # steps made in an epoch that the stop cut short
    steps_per_epoch: int | None = None

    def epochs_text(self) -> str:
        """``2``, or ``0 full + 11 of 12 steps`` when the stop cut an epoch short."""
        if not self.partial_epoch_steps:
            return str(self.epochs_completed)
        of = f" of {self.steps_per_epoch}" if self.steps_per_epoch else ""
        return f"{self.epochs_completed} full + {self.partial_epoch_steps}{of} steps"

    def best_text(self) -> str:
        if self.best_metric is None:
            return "n/a"
        step = f", step {self.best_step}" if self.best_step is not None else ""
        return f"{self.best_metric:.4f} (epoch {self.best_epoch}{step})"


def resolve_config(config: TrainConfig) -> TrainConfig:
    from fetal_bench.models import get_model_info

    info = get_model_info(config.model)
    resolved = apply_recipe(TrainConfig.from_dict(config.to_dict()), info)
    defaults = {"epochs": 20, "optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 16,
                "scheduler": "cosine", "grad_clip": 1.0, **info.train_defaults}
    for key, value in defaults.items():
        if getattr(resolved, key) is None:
            setattr(resolved, key, value)
    problems = []
    if resolved.optimizer not in ("adamw", "adam", "sgd"):
        problems.append(f"optimizer {resolved.optimizer!r} is not adamw/adam/sgd")
    if resolved.scheduler not in ("cosine", "none"):
        problems.append(f"scheduler {resolved.scheduler!r} is not cosine/none")
    if resolved.grad_clip < 0:
        problems.append(f"grad_clip {resolved.grad_clip!r} is negative (0: no clipping)")
    if resolved.epochs < 1 or resolved.batch_size < 1:
        problems.append("epochs and batch_size must be >= 1")
    if resolved.max_minutes is not None and resolved.max_minutes <= 0:
        problems.append("max_minutes must be > 0")
    if resolved.keep not in ("best", "last"):
        problems.append(f"keep {resolved.keep!r} is not best/last")
    if resolved.mixed_precision not in ("auto", "no", "fp16", "bf16"):
        problems.append(f"mixed_precision {resolved.mixed_precision!r} is not auto/no/fp16/bf16")
    if problems:
        raise FetalBenchError("Invalid training configuration: " + "; ".join(problems) + ".", "Fix the options.")
    resolved.exclude_labels = tuple(resolved.exclude_labels)
    if resolved.image_size is not None:
        resolved.image_size = tuple(int(v) for v in resolved.image_size)
    resolved.box_jitter = tuple(float(v) for v in resolved.box_jitter)
    return resolved


def apply_recipe(config: TrainConfig, info) -> TrainConfig:
    """Fill what the user left unset from the model's named recipe; record which one ran."""
    import torch

    name = config.recipe
    if name == "auto":
        name = "cpu" if "cpu" in info.recipes and not torch.cuda.is_available() else ("gpu" if info.recipes else "default")
    elif name not in info.recipes and name != "default":
        known = ", ".join(["auto", "default", *info.recipes])
        raise FetalBenchError(f"Model {info.name!r} has no recipe {name!r}.", f"Use one of: {known}.")
    recipe = info.recipes.get(name, {})
    config.recipe = name
    if config.image_size is None and "image_size" in recipe:
        config.image_size = tuple(recipe["image_size"])
    if config.batch_size is None and "batch_size" in recipe:
        config.batch_size = recipe["batch_size"]
    config.model_cfg = {**recipe.get("model_cfg", {}), **config.model_cfg}
    return config


def recipe_note(config: TrainConfig) -> str:
    size = "x".join(map(str, config.image_size)) if config.image_size else "the model's default"
    options = ", ".join(f"{k}={v}" for k, v in sorted(config.model_cfg.items())) or "the model's defaults"
    why = " (no GPU found; --recipe gpu trains the full-size network)" if config.recipe == "cpu" else ""
    return f"recipe {config.recipe}{why}: input {size}, batch {config.batch_size}, {options}"


class SlowPrecisionWarning(UserWarning):
    """The precision asked for has no hardware support here and runs slower than fp32."""


def cpu_bf16_units() -> bool:
    """Whether this CPU multiplies bf16 in hardware: x86's AMX-BF16 or AVX-512 BF16 (the flags
    ``amx_bf16`` / ``avx512_bf16`` of /proc/cpuinfo on Linux). Elsewhere (other systems, ARM) it
    answers False: fp32, the safe choice, until bf16 is measured faster there."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"amx_bf16", "avx512_bf16"})
    except OSError:
        pass
    return False


def mixed_precision(choice: str) -> str:
    """accelerate's precision for ``choice``. "auto": bf16 (or fp16) on a GPU; on a CPU, bf16 where it
    has bf16 units (:func:`cpu_bf16_units`; issue 26 measured on AMX cores a U-Net training step 2.3x
    faster than fp32, and one run at equal Dice) and fp32 ("no") elsewhere. An explicit choice is kept, with a warning
    when it is bf16 on a CPU without bf16 units, where PyTorch emulates it (measured on an AVX2-only
    AMD EPYC: a U-Net convolution 12x slower, a matrix product 30x slower than fp32). The committed
    leaderboard recipes pin "no", so they train alike on every CPU."""
    import torch

    if choice == "bf16" and not torch.cuda.is_available() and not cpu_bf16_units():
        warnings.warn("bf16 was asked for on a CPU without bf16 units (no amx_bf16 or avx512_bf16 in /proc/cpuinfo): "
                      "PyTorch emulates it and trains several times SLOWER than fp32. Fix: --mixed-precision no "
                      "(or auto).", SlowPrecisionWarning, stacklevel=2)
    if choice != "auto":
        return choice
    if not torch.cuda.is_available():
        return "bf16" if cpu_bf16_units() else "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


