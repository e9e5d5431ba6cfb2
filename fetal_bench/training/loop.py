"""One training loop for every fetal-bench baseline: ``fetal_bench.training.train``.

It runs on :mod:`accelerate`, so the same code trains on a CPU, one GPU (mixed precision:
bf16 where supported, else fp16) or several GPUs/machines (``accelerate launch``). Data come
through :func:`fetal_bench.data.loading.make_dataloader` (augmentation in its ``transform``
hook); the model through :func:`fetal_bench.models.create_model`.

Output directory::

    OUT/config.json, weights, README.md      the checkpoint of the best validation (docs/checkpoints.md;
                                             create_model(..., checkpoint=OUT))
    OUT/train_config.json                    the TrainConfig of the run
    OUT/train_log.jsonl                      one JSON object per logged step, validation and epoch
    OUT/curves.png                           losses and the validation metric per epoch
    OUT/checkpoints/step-NNNNNNNN/           resumable state: weights, optimizer, RNG, counters
                                             (fetal_bench.training.rundir, shared with the generators)

Resuming: run the same command again. Every ``checkpoint_every_steps`` steps and at each epoch's
end, a new snapshot is written atomically (the previous one is deleted only once it is complete);
a new run with the same output directory and config restores it and skips the batches already
seen in the current epoch, so (on CPU, where kernels are deterministic) an interrupted run ends
with the same weights as an uninterrupted one. Row
order and augmentation depend only on (seed, epoch, row), box-prompt jitter on (seed, step).
Ctrl-C saves the state before exiting.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from fetal_bench._io import write_json_atomic
from fetal_bench.errors import FetalBenchError
from fetal_bench.training.rundir import RunDirectory, Snapshot, fingerprint

__all__ = ["TrainConfig", "TrainResult", "train"]

# Fields that may change between an interrupted run and its resumption.
_RESUMABLE_CHANGES = frozenset({"output", "max_minutes", "max_steps", "epochs", "num_workers", "progress", "resume",
                                "overwrite", "checkpoint_every_steps", "mixed_precision", "log_every_steps"})


@dataclass
class TrainConfig:
    """Everything a training run depends on (saved as ``train_config.json``).

    ``None`` for ``epochs``, ``optimizer``, ``lr``, ``weight_decay``, ``batch_size`` and
    ``scheduler`` means the model's registered training default (``fetal-bench models list
    --json``; 20 epochs unless the model says otherwise). A model's ``recipe`` fills
    ``image_size``, ``batch_size`` and ``model_cfg`` entries that are not given.

    ``max_minutes`` bounds the whole run, closing validation and saving included: a step is
    only started when it and the closing work still fit.
    """

    model: str
    task: str
    output: str
    data: str | None = None
    config: str | None = None
    train_split: str = "train"
    val_split: str | None = "validation"
    exclude_labels: tuple[str, ...] = ()
    real_list: str | None = None  # a named list of real rows (training.data.REAL_LISTS)
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
    grad_clip: float | None = 1.0
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
    mixed_precision: str = "auto"
    resume: bool = True
    overwrite: bool = False
    run_name: str | None = None
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))  # tuples -> lists, JSON-safe

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
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


@dataclass
class LoopState:
    """The loop's progress: saved with every snapshot, restored on resume."""

    epoch: int = 0  # completed epochs
    batch_in_epoch: int = 0  # batches done in the current epoch
    global_step: int = 0
    steps_per_epoch: int = 0
    best: float | None = None  # best validation score so far
    best_epoch: int | None = None
    best_step: int | None = None
    last_val: float | None = None
    validated_step: int | None = None
    bad_validations: int = 0  # validations in a row without improvement (early stopping)
    elapsed_s: float = 0.0
    epoch_loss_sum: float = 0.0
    epoch_loss_n: int = 0
    stopped_by: str | None = None
    finished: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoopState:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


def _resolve(config: TrainConfig) -> TrainConfig:
    from fetal_bench.models import get_model_info

    info = get_model_info(config.model)
    resolved = _apply_recipe(TrainConfig.from_dict(config.to_dict()), info)
    defaults = {"epochs": 20, "optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 16,
                "scheduler": "cosine", **info.train_defaults}
    for key, value in defaults.items():
        if getattr(resolved, key) is None:
            setattr(resolved, key, value)
    problems = []
    if resolved.optimizer not in ("adamw", "adam", "sgd"):
        problems.append(f"optimizer {resolved.optimizer!r} is not adamw/adam/sgd")
    if resolved.scheduler not in ("cosine", "none"):
        problems.append(f"scheduler {resolved.scheduler!r} is not cosine/none")
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


def _apply_recipe(config: TrainConfig, info) -> TrainConfig:
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


def _recipe_note(config: TrainConfig) -> str:
    size = "x".join(map(str, config.image_size)) if config.image_size else "the model's default"
    options = ", ".join(f"{k}={v}" for k, v in sorted(config.model_cfg.items())) or "the model's defaults"
    why = " (no GPU found; --recipe gpu trains the full-size network)" if config.recipe == "cpu" else ""
    return f"recipe {config.recipe}{why}: input {size}, batch {config.batch_size}, {options}"


def _mixed_precision(choice: str) -> str:
    import torch

    if choice != "auto":
        return choice
    if not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def _run_directory(out: Path, config: TrainConfig) -> RunDirectory:
    """The run's snapshots, identified by the settings that may not change on resume."""
    settings = {k: v for k, v in config.to_dict().items() if k not in _RESUMABLE_CHANGES}
    return RunDirectory(out, fingerprint=fingerprint(settings), keep_last=1)


def _prepare_output(out: Path, config: TrainConfig) -> Snapshot | None:
    """Create/clean ``out``; return the snapshot to resume from, when resuming."""
    # A run that failed before its first checkpoint left only its config/log: start it afresh.
    never_checkpointed = out.is_dir() and {p.name for p in out.iterdir()} <= {"train_config.json", "train_log.jsonl"}
    if out.exists() and (config.overwrite or never_checkpointed):
        shutil.rmtree(out)
    if out.exists() and any(out.iterdir()):
        if config.resume and (out / "train_config.json").is_file():
            saved, current = _read_json(out / "train_config.json"), config.to_dict()
            changed = sorted(k for k in set(saved) | set(current)
                             if k not in _RESUMABLE_CHANGES and saved.get(k) != current.get(k))
            if changed:
                raise FetalBenchError(
                    f"{out} holds a run with other settings ({', '.join(f'{k}: {saved.get(k)!r} -> {current.get(k)!r}' for k in changed[:4])}).",
                    "Resume with the same options, or pass --overwrite (or another --output) to start a new run.")
        latest = _run_directory(out, config).latest()
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


def train(config: TrainConfig | None = None, *, callbacks: Sequence[Callable[[dict[str, Any]], None]] = (),
          log: Callable[[str], None] | None = None, **options: Any) -> TrainResult:
    """Train a registered model on a task; write a checkpoint the harness can evaluate.

    Either pass a :class:`TrainConfig` or its fields as keyword arguments::

        train(model="unet", task="hc18-head-seg", data="out/hc18", output="runs/unet",
              image_size=(160, 240), max_minutes=30)

    ``callbacks`` are called after every optimisation step with a dict (``step``, ``epoch``,
    ``loss``, ...); an exception raised there aborts the run (tests use it to simulate a crash).
    Returns a :class:`TrainResult`; the checkpoint is ``result.output``.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from fetal_bench.models import get_model_info
    from fetal_bench.tasks import get_task
    from fetal_bench.training.data import prepare_training_data

    entered = time.perf_counter()  # the budget counts setup (data, model) too
    if config is None:
        config = TrainConfig(**options)
    elif options:
        config = TrainConfig.from_dict({**config.to_dict(), **options})
    config = _resolve(config)
    note = log or (lambda message: None)
    if get_model_info(config.model).recipes:
        note(_recipe_note(config))
    task = get_task(config.task)
    out = Path(config.output)
    snapshot = _prepare_output(out, config)
    if snapshot is not None and LoopState.from_dict(snapshot.state).finished:
        note(f"{out} holds a finished run; nothing to do (pass --overwrite to train again).")
        return _result_from_state(out, config, LoopState.from_dict(snapshot.state), resumed=True)
    run = _run_directory(out, config)

    accelerator = Accelerator(mixed_precision=_mixed_precision(config.mixed_precision))
    if accelerator.is_main_process:
        write_json_atomic(out / "train_config.json", config.to_dict())
    set_seed(config.seed)
    # A classifier registered as trained on masks (the segmentation route to a frame label) learns
    # from the task's masks with the segmentation loss and is validated on its frame labels.
    by_masks = task.kind.has_labels and get_model_info(config.model).trains_on_masks

    data = prepare_training_data(
        task, data=config.data, config=config.config, train_split=config.train_split, val_split=config.val_split,
        exclude_labels=config.exclude_labels, real_list=config.real_list, real_per_class=config.real_per_class,
        real_n=config.real_n,
        synthetic=config.synthetic, synthetic_config=config.synthetic_config, synthetic_ratio=config.synthetic_ratio,
        synthetic_per_class=config.synthetic_per_class, synthetic_n=config.synthetic_n, seed=config.seed,
        with_masks=by_masks)
    note(f"training rows: {data.n_real} real + {data.n_synthetic} synthetic; validation rows: "
         f"{0 if data.validation is None else len(data.validation)}")

    model = _build_model(config, data, resumed=snapshot is not None)
    spec = model.spec
    classification = task.kind.has_labels and not by_masks  # learns from labels
    metric_name = task.kind.validation_metric(task)
    # Trained on masks, class 1 is "foreground present"; else the task's positive class, if any.
    positive = 1 if by_masks else task.kind.positive_index(task, spec.labels)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise FetalBenchError(f"Model {config.model!r} has no trainable parameters with these options.", "Check model_cfg.")
    optimizer = _optimizer(config, params)
    batch_size = int(config.batch_size)
    drop_last = len(data.train) > batch_size  # a lone last row would break BatchNorm
    steps_per_epoch = max(1, len(data.train) // batch_size if drop_last else math.ceil(len(data.train) / batch_size))
    steps_per_epoch = max(1, math.ceil(steps_per_epoch / accelerator.num_processes))
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    scheduler = _Schedule(optimizer, config, total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)

    from fetal_bench.training.augment import make_augment

    augment = make_augment(config.augment)
    loader_options = dict(task="segmentation" if by_masks else task.kind.name, image_size=tuple(spec.image_size),
                          channels=spec.channels,
                          normalize=spec.normalize, label_column=data.label_column, mask_column=data.mask_column,
                          num_workers=config.num_workers)

    state = LoopState(steps_per_epoch=steps_per_epoch)
    # An adapter model's frozen base is rebuilt from its source on resume (see _build_model), so
    # its snapshots hold only what training changes: vit_lora's are ~5 MB instead of 346 MB.
    adapter_snapshots = get_model_info(config.model).adapter_checkpoints
    resumed = snapshot is not None
    if resumed:
        run.restore(snapshot, weights=_snapshot_loader(accelerator.unwrap_model(model), adapter_snapshots),
                    optimizer=optimizer, rng=True)
        state = LoopState.from_dict({**state.to_dict(), **snapshot.state})
        _truncate_log(out / "train_log.jsonl", state.global_step)
        note(f"resuming {out} at epoch {state.epoch + 1}, step {state.global_step}")

    logger = _JsonlLog(out / "train_log.jsonl", enabled=accelerator.is_main_process)
    budget_s = None if config.max_minutes is None else 60.0 * config.max_minutes
    started = entered - state.elapsed_s
    n_val_batches = 0 if data.validation is None else math.ceil(len(data.validation) / (config.eval_batch_size or batch_size))
    budget = _Budget(budget_s, n_val_batches)
    val_loader = None
    if data.validation is not None:
        val_loader = accelerator.prepare(_loader(data.validation, loader_options, config.eval_batch_size or batch_size,
                                                 shuffle=False, seed=config.seed, transform=None, drop_last=False))

    def elapsed() -> float:
        return time.perf_counter() - started

    def save_state() -> None:
        begun = time.perf_counter()
        state.elapsed_s = elapsed()
        if accelerator.is_main_process:
            run.save(state.global_step, weights=_snapshot_weights(accelerator.unwrap_model(model), adapter_snapshots),
                     optimizer=optimizer, state=state.to_dict(), rng=True)
        accelerator.wait_for_everyone()
        budget.saved(time.perf_counter() - begun)

    def validate() -> None:
        if val_loader is None or state.validated_step == state.global_step:
            return  # nothing changed since the last validation
        begun = time.perf_counter()
        scores = _validate(model, val_loader, accelerator, classification, spec, config, by_masks, positive)
        budget.validated(time.perf_counter() - begun)
        value = scores[metric_name]
        state.last_val, state.validated_step = value, state.global_step
        improved = state.best is None or value > state.best + config.min_delta
        if improved:
            state.best, state.best_epoch, state.bad_validations = value, state.epoch + 1, 0
            state.best_step = state.global_step
            if config.keep == "best":
                _save_best(accelerator.unwrap_model(model), out, config, data, state, metric_name, task, accelerator)
        else:
            state.bad_validations += 1
        logger.write({"type": "validation", "epoch": state.epoch + 1, "step": state.global_step,
                      **scores, "best": state.best, "improved": improved, "time_s": round(elapsed(), 2)})
        note(f"epoch {state.epoch + 1} step {state.global_step}: val loss {scores['loss']:.4f}, "
             f"{metric_name} {value:.4f}" + (" (best)" if improved else ""))

    # One bar for the whole run, on stderr (tqdm's default): piped stdout stays clean.
    progress = _progress(config.progress and accelerator.is_local_main_process, total_steps, state.global_step,
                         f"training {config.model}")
    try:
        while state.epoch < config.epochs and state.stopped_by is None:
            if not budget.allows_step(elapsed()):
                state.stopped_by = "max_minutes"
                break
            epoch = state.epoch
            loader = accelerator.prepare(_loader(data.train, loader_options, batch_size, shuffle=True,
                                                 seed=_epoch_seed(config.seed, epoch), transform=augment,
                                                 drop_last=drop_last))
            if state.batch_in_epoch:
                loader = accelerator.skip_first_batches(loader, state.batch_in_epoch)
            model.train()
            step_began = time.perf_counter()
            for batch in loader:
                scheduler.apply(state.global_step, elapsed(), budget.training_s)
                loss = _step(model, batch, optimizer, accelerator, classification, spec, config,
                             params, state.global_step, by_masks)
                state.global_step += 1
                state.batch_in_epoch += 1
                state.epoch_loss_sum += loss
                state.epoch_loss_n += 1
                budget.stepped(time.perf_counter() - step_began)
                if progress is not None:
                    progress.update(1)
                    progress.set_postfix(epoch=f"{epoch + 1}/{config.epochs}", loss=f"{loss:.4f}", refresh=False)
                if state.global_step % config.log_every_steps == 0:
                    logger.write({"type": "step", "epoch": epoch + 1, "step": state.global_step, "loss": loss,
                                  "lr": scheduler.last_lr, "time_s": round(elapsed(), 2)})
                info = {"step": state.global_step, "epoch": epoch + 1, "loss": loss, "elapsed_s": elapsed()}
                for callback in callbacks:
                    callback(info)
                if config.val_every_steps and state.global_step % config.val_every_steps == 0:
                    validate()
                    model.train()
                if config.max_steps is not None and state.global_step >= config.max_steps:
                    state.stopped_by = "max_steps"
                elif not budget.allows_step(elapsed()):
                    state.stopped_by = "max_minutes"
                if state.stopped_by:
                    break
                if state.global_step % config.checkpoint_every_steps == 0:
                    save_state()
                step_began = time.perf_counter()
            epoch_done = state.stopped_by is None
            if state.epoch_loss_n:
                logger.write({"type": "epoch", "epoch": epoch + 1, "step": state.global_step,
                              "train_loss": state.epoch_loss_sum / state.epoch_loss_n, "complete": epoch_done,
                              "time_s": round(elapsed(), 2)})
            if (not config.val_every_steps or state.stopped_by) and budget.fits_closing(elapsed()):
                validate()
            elif state.stopped_by == "max_minutes" and val_loader is not None:
                note("the time budget is spent: no closing validation; the checkpoint holds the "
                     + ("best validated weights" if state.best is not None else "last weights"))
            if config.patience and state.bad_validations >= config.patience:  # 0 or None: off
                state.stopped_by = state.stopped_by or "early_stopping"
            if epoch_done:
                state.epoch += 1
                state.batch_in_epoch = 0
                state.epoch_loss_sum, state.epoch_loss_n = 0.0, 0
            save_state()
        if progress is not None:
            progress.close()
        state.stopped_by = state.stopped_by or "epochs"
        state.finished = True
        state.elapsed_s = elapsed()
        if val_loader is None or state.best is None or config.keep == "last":
            _save_best(accelerator.unwrap_model(model), out, config, data, state, metric_name, task, accelerator)
        else:
            _update_training_info(out, config, data, state, metric_name, task, accelerator)
        save_state()
    except KeyboardInterrupt:
        if progress is not None:
            progress.close()
        save_state()
        note(f"interrupted; state saved in {out / 'last'}: run the same command to resume")
        raise
    if accelerator.is_main_process:
        _plot(out)
    result = _result_from_state(out, config, state, resumed=resumed, data=data)
    result.train_time_s = round(elapsed(), 1)  # the whole run, closing saves and plot included
    return result


# --------------------------------------------------------------------------------------------
# pieces
# --------------------------------------------------------------------------------------------


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919) % (2**63 - 1)


def _loader(dataset, options: dict[str, Any], batch_size: int, *, shuffle: bool, seed: int, transform, drop_last: bool):
    from fetal_bench.data.loading import make_dataloader

    # decoded_cache: every epoch (and validation) reads the images decoded once (docs/caching.md).
    return make_dataloader(dataset, batch_size=batch_size, shuffle=shuffle, seed=seed, transform=transform,
                           drop_last=drop_last, decoded_cache=True, **options)


def _build_model(config: TrainConfig, data, *, resumed: bool):
    from fetal_bench.models import create_model, get_model_info

    info = get_model_info(config.model)
    cfg = dict(config.model_cfg)
    if config.image_size is not None:
        cfg["image_size"] = list(config.image_size)
    options = _builder_options(info)
    # A classifier learns the data's labels unless its label set is fixed (then the check below
    # compares the two instead).
    if info.classifies and not info.fixed_labels and "labels" in options and "labels" not in cfg:
        cfg["labels"] = list(data.labels)
    if (resumed or config.init_from) and "restore" in options and not info.adapter_checkpoints:
        cfg["restore"] = True  # the weights are about to be replaced: do not fetch pretrained ones
    if info.classifies != (data.label_column is not None):
        raise FetalBenchError(f"Model {config.model!r} is a {info.task_type} model; task {config.task!r} is not.",
                              "Pick a model of the task's type (`fetal-bench models list`).")
    model = create_model(config.model, **cfg)
    if info.classifies and tuple(model.spec.labels) != tuple(data.labels):
        raise FetalBenchError(f"Model {config.model!r} predicts {list(model.spec.labels)}; the training data has {list(data.labels)}.",
                              "Train a model whose label set matches the data (or exclude classes).")
    if config.init_from and not resumed:
        from fetal_bench.models.checkpoint import read_checkpoint, restore_weights

        restore_weights(model, read_checkpoint(config.init_from))
    return model


def _builder_options(info) -> set[str]:
    import importlib
    import inspect

    module_name, function_name = info.builder.split(":")
    return set(inspect.signature(getattr(importlib.import_module(module_name), function_name)).parameters)


def _optimizer(config: TrainConfig, params):
    import torch

    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


class _Budget:
    """``--max-minutes`` for the whole run: a step starts only if it, the closing validation and
    the closing saves (weights, resumable state, curves) still fit in the budget.

    Durations are measured as the run goes (a moving average of steps; the last validation and
    save). Until a validation has been measured, one is estimated as 0.35 training steps per
    validation batch (a forward pass is about a third of forward + backward), and the saves and
    plot at 3 s.
    The first step always runs: there is nothing to estimate from before it.
    """

    _SAVE_GUESS_S = 3.0
    _VALIDATION_PER_BATCH = 0.35

    def __init__(self, budget_s: float | None, n_val_batches: int):
        self.budget_s = budget_s
        self.n_val_batches = n_val_batches
        self.step_s: float | None = None
        self.validation_s: float | None = None
        self.save_s: float | None = None

    def stepped(self, seconds: float) -> None:
        self.step_s = seconds if self.step_s is None else 0.8 * self.step_s + 0.2 * seconds

    def validated(self, seconds: float) -> None:
        self.validation_s = seconds

    def saved(self, seconds: float) -> None:
        self.save_s = seconds if self.save_s is None else max(self.save_s, seconds)

    def closing_s(self) -> float:
        """What the run still has to do after its last step: validate, save twice, plot."""
        step = self.step_s or 0.0
        validation = self.validation_s if self.validation_s is not None else \
            self._VALIDATION_PER_BATCH * step * self.n_val_batches
        return 1.1 * validation + 2 * (self.save_s if self.save_s is not None else self._SAVE_GUESS_S)

    @property
    def training_s(self) -> float | None:
        """The part of the budget that steps can use (the cosine schedule follows it)."""
        if self.budget_s is None:
            return None
        return max(1e-6, self.budget_s - self.closing_s())

    def fits_closing(self, elapsed_s: float) -> bool:
        """Whether the closing validation and saves still fit (a step may have overrun)."""
        return self.budget_s is None or elapsed_s + self.closing_s() <= self.budget_s

    def allows_step(self, elapsed_s: float) -> bool:
        if self.budget_s is None or self.step_s is None:
            return True
        return elapsed_s + self.step_s + self.closing_s() <= self.budget_s


class _Schedule:
    """Learning rate per step: linear warm-up, then cosine decay (or constant).

    The cosine follows whichever is further along, the steps or (with ``max_minutes``) the
    time budget, so a run stopped by the clock still ends with an annealed learning rate.
    Stateless apart from the base rates: resuming needs only the step and the elapsed time.
    """

    def __init__(self, optimizer, config: TrainConfig, total_steps: int):
        self.base = [group["lr"] for group in optimizer.param_groups]
        self.optimizer = optimizer
        self.warmup = max(0, config.warmup_steps)
        self.cosine = config.scheduler == "cosine"
        self.total = max(1, total_steps)
        self.last_lr = self.base[0]

    def factor(self, step: int, elapsed_s: float, budget_s: float | None) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        if not self.cosine:
            return 1.0
        progress = (step - self.warmup) / max(1, self.total - self.warmup)
        if budget_s:
            progress = max(progress, elapsed_s / budget_s)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    def apply(self, step: int, elapsed_s: float, budget_s: float | None) -> None:
        factor = self.factor(step, elapsed_s, budget_s)
        for group, base in zip(self.optimizer.param_groups, self.base):
            group["lr"] = base * factor
        self.last_lr = self.base[0] * factor


def _forward(model, batch, spec, config: TrainConfig, jitter_seed: int, by_masks: bool = False):
    """Logits for a batch; box prompts (SAM) from the masks, jittered outward; segmentation
    logits of a classifier trained on masks."""
    import torch

    from fetal_bench.training.losses import boxes_from_masks

    pixels = batch["pixel_values"]
    if getattr(spec, "prompt", None) == "box":
        generator = torch.Generator().manual_seed(jitter_seed)
        boxes = boxes_from_masks(batch["masks"], jitter=config.box_jitter, generator=generator)
        return model(pixels, boxes=boxes)
    if by_masks:
        return model(pixels, output="mask")
    return model(pixels)


def _loss(logits, batch, classification: bool):
    import torch.nn.functional as F

    from fetal_bench.training.losses import dice_ce_loss

    if classification:
        return F.cross_entropy(logits.float(), batch["labels"])
    masks = batch["masks"]
    if logits.shape[-2:] != masks.shape[-2:]:
        logits = F.interpolate(logits.float(), size=masks.shape[-2:], mode="bilinear", align_corners=False)
    return dice_ce_loss(logits, masks)


def _step(model, batch, optimizer, accelerator, classification, spec, config, params, step: int,
          by_masks: bool = False) -> float:
    with accelerator.autocast():
        logits = _forward(model, batch, spec, config, jitter_seed=config.seed * 1_000_003 + step, by_masks=by_masks)
    loss = _loss(logits, batch, classification)
    accelerator.backward(loss)
    if config.grad_clip and accelerator.sync_gradients:
        accelerator.clip_grad_norm_(params, config.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def _validate(model, loader, accelerator, classification: bool, spec, config: TrainConfig, by_masks: bool = False,
              positive: int | None = None) -> dict[str, float]:
    """Validation loss and metrics. ``positive``: the class whose F1 is reported (binary tasks).

    A classifier trained on masks is also scored on frame labels; its reference label is "the
    mask has foreground" (positive = class 1), which is how acouslic-iqa defines usable.
    """
    import torch
    import torch.nn.functional as F

    from fetal_bench import metrics as M
    from fetal_bench.training.losses import segmentation_dice

    model.eval()
    losses, truth, predicted, dices = [], [], [], []
    with torch.no_grad():
        for index, batch in enumerate(loader):
            with accelerator.autocast():
                # A fixed jitter per validation batch: comparable across validations.
                logits = _forward(model, batch, spec, config, jitter_seed=config.seed * 7_777 + index,
                                  by_masks=by_masks)
                frame_logits = model(batch["pixel_values"]) if by_masks else None
            logits = logits.float()
            if classification:
                labels = batch["labels"]
                loss = F.cross_entropy(logits, labels, reduction="none")
                pred = logits.argmax(dim=1)
                loss, pred, labels = accelerator.gather_for_metrics((loss, pred, labels))
                losses.append(loss.cpu())
                truth.append(labels.cpu())
                predicted.append(pred.cpu())
            else:
                masks = batch["masks"]
                if logits.shape[-2:] != masks.shape[-2:]:
                    logits = F.interpolate(logits, size=masks.shape[-2:], mode="bilinear", align_corners=False)
                from fetal_bench.training.losses import dice_ce_loss

                per_image = torch.stack([dice_ce_loss(logits[i:i + 1], masks[i:i + 1]) for i in range(len(masks))])
                dice = segmentation_dice(logits, masks)
                per_image, dice = accelerator.gather_for_metrics((per_image, dice))
                losses.append(per_image.cpu())
                dices.append(dice.cpu())
                if frame_logits is not None:
                    pred = frame_logits.float().argmax(dim=1)
                    labels = (masks > 0).flatten(1).any(dim=1).long()
                    pred, labels = accelerator.gather_for_metrics((pred, labels))
                    truth.append(labels.cpu())
                    predicted.append(pred.cpu())
    scores = {"loss": float(torch.cat(losses).mean())}
    if dices:
        scores["dice"] = float(torch.cat(dices).mean())
    if truth:
        y_true, y_pred = torch.cat(truth).numpy(), torch.cat(predicted).numpy()
        scores["accuracy"] = float(np.mean(y_true == y_pred))
        # The reported metric's own definition (every class of the model counts), so the best
        # epoch is chosen on the number the harness will report.
        scores["macro_f1"] = M.macro_f1(y_true, y_pred, len(spec.labels))
        if positive is not None:
            scores["f1"] = M.f1(y_true, y_pred, positive) or 0.0  # undefined (no positive at all) counts as 0
    return scores


def _training_info(config: TrainConfig, data, state: LoopState, metric: str, task) -> dict[str, Any]:
    return {
        "task": task.name,
        "training_data": data.training_data,
        "synthetic_share": round(data.synthetic_share, 6),
        "n_train_real": data.n_real,
        "n_train_synthetic": data.n_synthetic,
        "n_validation": 0 if data.validation is None else len(data.validation),
        "epochs": state.epoch + (1 if state.batch_in_epoch else 0),
        "steps": state.global_step,
        "best_metric": None if state.best is None else {"name": f"val_{metric}", "value": state.best,
                                                            "epoch": state.best_epoch},
        "last_val_metric": state.last_val,
        "weights": "best validation epoch" if config.keep == "best" and state.best is not None else "last step",
        "stopped_by": state.stopped_by,
        "train_time_s": round(state.elapsed_s, 1),
        "seed": config.seed,
        "optimizer": {"name": config.optimizer, "lr": config.lr, "weight_decay": config.weight_decay,
                      "momentum": config.momentum if config.optimizer == "sgd" else None, "scheduler": config.scheduler},
        "batch_size": config.batch_size,
        "augment": config.augment,
        "init_from": config.init_from,
        "data": data.sources,
    }


def _save_best(model, out: Path, config, data, state, metric: str, task, accelerator) -> None:
    from fetal_bench.models import save_checkpoint

    if accelerator.is_main_process:
        save_checkpoint(model, out, training=_training_info(config, data, state, metric, task),
                        run_name=config.run_name or out.name)
    accelerator.wait_for_everyone()


def _update_training_info(out: Path, config, data, state, metric: str, task, accelerator) -> None:
    """Rewrite the checkpoint's training record at the end (the weights stay the best ones)."""
    from fetal_bench.models.checkpoint import update_training_info

    if accelerator.is_main_process:
        update_training_info(out, json.loads(json.dumps(_training_info(config, data, state, metric, task))))
    accelerator.wait_for_everyone()


def _snapshot_weights(model, adapter_only: bool):
    """What a training snapshot keeps: the whole model, or (adapter models) its trainable
    parameters and its buffers (e.g. normalisation statistics, which train mode updates)."""
    if not adapter_only:
        return model
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    buffers = {name for name, _ in model.named_buffers()}
    return {name: tensor for name, tensor in model.state_dict().items() if name in trainable | buffers}


def _snapshot_loader(model, adapter_only: bool):
    """The counterpart of :func:`_snapshot_weights` for :meth:`RunDirectory.restore`."""
    if not adapter_only:
        return model

    def load(tensors: dict) -> None:
        frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        stray = sorted(set(missing) - frozen) + sorted(unexpected)
        if stray:
            raise KeyError(f"the snapshot does not fit the model: {stray[:5]}")

    return load


class _JsonlLog:
    def __init__(self, path: Path, *, enabled: bool):
        self.path = path
        self.enabled = enabled

    def write(self, entry: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in entry.items()}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(clean) + "\n")


def _truncate_log(path: Path, step: int) -> None:
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


def _plot(out: Path) -> None:
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


def _progress(enabled: bool, total: int, initial: int, description: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=description, unit="step", leave=False, dynamic_ncols=True,
                file=sys.stderr)


def _result_from_state(out: Path, config: TrainConfig, state: LoopState, *, resumed: bool, data=None) -> TrainResult:
    from fetal_bench.models.checkpoint import is_checkpoint_directory, read_checkpoint
    from fetal_bench.tasks import get_task

    task = get_task(config.task)
    training = read_checkpoint(out).training if is_checkpoint_directory(out) else {}
    best = training.get("best_metric") or {}
    return TrainResult(
        output=out, model=config.model, task=config.task,
        metric=(best.get("name") or "").removeprefix("val_") or task.kind.validation_metric(task),
        best_metric=state.best, best_epoch=state.best_epoch,
        epochs_completed=state.epoch, steps=state.global_step, stopped_by=state.stopped_by or "",
        best_step=state.best_step, partial_epoch_steps=state.batch_in_epoch,
        steps_per_epoch=state.steps_per_epoch, recipe=config.recipe,
        train_time_s=round(state.elapsed_s, 1), resumed=resumed,
        n_train=training.get("n_train_real", 0) + training.get("n_train_synthetic", 0),
        training_data=training.get("training_data", "real"), synthetic_share=training.get("synthetic_share", 0.0),
    )
