"""One trainer for every fetal-bench baseline: ``fetal_bench.training.train``.

:class:`Trainer` reads top to bottom like Hugging Face's ``Trainer``: :meth:`Trainer.train` sets
the run up, runs epochs of :meth:`Trainer.training_step`, validates (:meth:`Trainer.evaluate`),
saves resumable snapshots and the best checkpoint, and returns a :class:`TrainResult`. What the
model learns from and how it is validated is the task kind's (``task.kind.training_targets``,
``task.kind.objective``): the trainer never asks which type a task is.

It runs on :mod:`accelerate`, so the same code trains on a CPU, one GPU (``mixed_precision:
auto``: bf16 where supported, else fp16; ``no``: fp32, as the papers' protocols that train in
fp32) or several GPUs/machines (``accelerate launch``). Gradients are clipped at
``grad_clip`` (the model's default, 1.0 unless it says otherwise; 0: not clipped). Data come through
:func:`fetal_bench.data.loading.make_dataloader` (augmentation in its ``transform`` hook); the
model through :func:`fetal_bench.models.create_model`. The run directory's layout is
:mod:`fetal_bench.training.run_files`'.

Resuming: run the same command again. Every ``checkpoint_every_steps`` steps and at each epoch's
end, a new snapshot is written atomically (the previous one is deleted only once it is complete);
a new run with the same output directory and config restores it and skips the batches already
seen in the current epoch, so (on CPU, where kernels are deterministic) an interrupted run ends
with the same weights as an uninterrupted one. Row order and augmentation depend only on (seed,
epoch, row), box-prompt jitter on (seed, step). Ctrl-C saves the state before exiting.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from fetal_bench._io import write_json_atomic
from fetal_bench.errors import FetalBenchError
from fetal_bench.training.config import TrainConfig, TrainResult, mixed_precision, recipe_note, resolve_config
from fetal_bench.training.mixing import TrainingData, prepare_training_data
from fetal_bench.training.run_files import (
    JsonlLog,
    plot_curves_of,
    prepare_output,
    run_directory,
    snapshot_loader,
    snapshot_weights,
    truncate_log,
)
from fetal_bench.training.schedule import Budget, LearningRateSchedule, epoch_seed

__all__ = ["TrainConfig", "TrainResult", "Trainer", "TrainerState", "train"]


@dataclass
class TrainerState:
    """The run's progress: saved with every snapshot, restored on resume."""

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
    def from_dict(cls, data: dict[str, Any]) -> TrainerState:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


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
    if config is None:
        config = TrainConfig(**options)
    elif options:
        config = TrainConfig.from_dict({**config.to_dict(), **options})
    return Trainer(config, callbacks=callbacks, log=log).train()


class Trainer:
    """One training run: set up, then epochs of steps with validation and snapshots, then the
    closing validation and checkpoint."""

    def __init__(self, config: TrainConfig, *, callbacks: Sequence[Callable[[dict[str, Any]], None]] = (),
                 log: Callable[[str], None] | None = None):
        from fetal_bench.models import get_model_info
        from fetal_bench.tasks import get_task

        self.entered = time.perf_counter()  # the budget counts setup (data, model) too
        self.config = resolve_config(config)
        self.callbacks = list(callbacks)
        self.note = log or (lambda message: None)
        self.info = get_model_info(self.config.model)
        self.task = get_task(self.config.task)
        self.out = Path(self.config.output)

    # -- the run ------------------------------------------------------------------------------

    def train(self) -> TrainResult:
        if self.info.recipes:
            self.note(recipe_note(self.config))
        snapshot = prepare_output(self.out, self.config)
        if snapshot is not None and TrainerState.from_dict(snapshot.state).finished:
            self.note(f"{self.out} holds a finished run; nothing to do (pass --overwrite to train again).")
            return self._result(TrainerState.from_dict(snapshot.state), resumed=True)
        self._set_up(resumed=snapshot is not None)
        if snapshot is not None:
            self._resume(snapshot)
        self.started = self.entered - self.state.elapsed_s
        self.budget = self._budget()
        self.val_loader = None
        if self.data.validation is not None:
            eval_batch_size = self.config.eval_batch_size or self.config.batch_size
            self.val_loader = self.accelerator.prepare(self._loader(self.data.validation, eval_batch_size, shuffle=False,
                                                                    seed=self.config.seed))
        self.progress = self._progress_bar()
        try:
            while self.state.epoch < self.config.epochs and self.state.stopped_by is None:
                if not self.budget.allows_step(self.elapsed()):
                    self.state.stopped_by = "max_minutes"
                    break
                self._train_epoch(self.state.epoch)
            self._close_progress()
            self._finish()
        except KeyboardInterrupt:
            self._close_progress()
            self._save_state()
            self.note(f"interrupted; state saved in {self.out / 'last'}: run the same command to resume")
            raise
        if self.accelerator.is_main_process:
            plot_curves_of(self.out)
        result = self._result(self.state, resumed=snapshot is not None)
        result.train_time_s = round(self.elapsed(), 1)  # the whole run, closing saves and plot included
        return result

    def _set_up(self, *, resumed: bool) -> None:
        """Accelerator, data, model, objective, optimizer and schedule, in the order the seeded
        random state sees them (the model's initial weights come after the data)."""
        from accelerate.utils import set_seed

        from fetal_bench.training.augment import make_augment

        config, kind = self.config, self.task.kind
        kind.check_model(self.task, self.info)
        self.accelerator = accelerator_for(mixed_precision(config.mixed_precision))
        if self.accelerator.is_main_process:
            write_json_atomic(self.out / "train_config.json", config.to_dict())
        set_seed(config.seed)
        self.data = self._training_data()
        model = build_model(config, self.info, self.data, resumed=resumed)
        self.objective = kind.objective(self.task, self.info, model.spec, box_jitter=config.box_jitter)
        self.metric = kind.validation_metric(self.task)
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise FetalBenchError(f"Model {config.model!r} has no trainable parameters with these options.",
                                  "Check model_cfg.")
        optimizer = make_optimizer(config, self.params)
        self.drop_last = len(self.data.train) > config.batch_size  # a lone last row would break BatchNorm
        steps_per_epoch = self._steps_per_epoch()
        total_steps = config.epochs * steps_per_epoch
        self.total_steps = total_steps if config.max_steps is None else min(total_steps, config.max_steps)
        self.schedule = LearningRateSchedule(optimizer, config, self.total_steps)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.augment = make_augment(config.augment)
        self.state = TrainerState(steps_per_epoch=steps_per_epoch)
        self.run = run_directory(self.out, config)
        self.logger = JsonlLog(self.out / "train_log.jsonl", enabled=self.accelerator.is_main_process)

    def _training_data(self) -> TrainingData:
        config = self.config
        data = prepare_training_data(
            self.task, self.info, data=config.data, data_config=config.data_config, train_split=config.train_split,
            val_split=config.val_split, exclude_labels=config.exclude_labels, real_list=config.real_list,
            real_per_class=config.real_per_class, real_n=config.real_n, synthetic=config.synthetic,
            synthetic_config=config.synthetic_config, synthetic_ratio=config.synthetic_ratio,
            synthetic_per_class=config.synthetic_per_class, synthetic_n=config.synthetic_n, seed=config.seed)
        self.note(f"training rows: {data.n_real} real + {data.n_synthetic} synthetic; validation rows: "
                  f"{0 if data.validation is None else len(data.validation)}")
        return data

    def _steps_per_epoch(self) -> int:
        rows, batch_size = len(self.data.train), int(self.config.batch_size)
        steps = max(1, rows // batch_size if self.drop_last else math.ceil(rows / batch_size))
        return max(1, math.ceil(steps / self.accelerator.num_processes))

    def _resume(self, snapshot) -> None:
        # An adapter model's frozen base is rebuilt from its source (see build_model), so its
        # snapshots hold only what training changes: vit_lora's are ~5 MB instead of 346 MB.
        self.run.restore(snapshot, weights=snapshot_loader(self._unwrapped(), self.info.adapter_checkpoints),
                         optimizer=self.optimizer, rng=True)
        self.state = TrainerState.from_dict({**self.state.to_dict(), **snapshot.state})
        truncate_log(self.out / "train_log.jsonl", self.state.global_step)
        self.note(f"resuming {self.out} at epoch {self.state.epoch + 1}, step {self.state.global_step}")

    def _budget(self) -> Budget:
        config = self.config
        budget_s = None if config.max_minutes is None else 60.0 * config.max_minutes
        validation = self.data.validation
        n_val_batches = 0 if validation is None else math.ceil(len(validation) / (config.eval_batch_size or
                                                                                  config.batch_size))
        return Budget(budget_s, n_val_batches)

    # -- an epoch -----------------------------------------------------------------------------

    def _train_epoch(self, epoch: int) -> None:
        """The epoch's remaining batches; then its log line, validation and snapshot."""
        config, state = self.config, self.state
        loader = self.accelerator.prepare(self._loader(self.data.train, config.batch_size, shuffle=True,
                                                       seed=epoch_seed(config.seed, epoch), transform=self.augment,
                                                       drop_last=self.drop_last))
        if state.batch_in_epoch:
            loader = self.accelerator.skip_first_batches(loader, state.batch_in_epoch)
        self.model.train()
        step_began = time.perf_counter()
        for batch in loader:
            self.schedule.apply(state.global_step, self.elapsed(), self.budget.training_s)
            loss = self.training_step(batch)
            self._after_step(epoch, loss, time.perf_counter() - step_began)
            if state.stopped_by:
                break
            if state.global_step % config.checkpoint_every_steps == 0:
                self._save_state()
            step_began = time.perf_counter()
        self._end_epoch(epoch)

    def training_step(self, batch: dict) -> float:
        """One optimisation step on ``batch``; its loss."""
        return optimization_step(self.model, batch, self.objective, self.optimizer, self.accelerator, self.params,
                                 grad_clip=self.config.grad_clip, seed=self.config.seed * 1_000_003 + self.state.global_step)

    def _after_step(self, epoch: int, loss: float, seconds: float) -> None:
        """Count, log and report a step; validate when due; decide whether the run stops here."""
        config, state = self.config, self.state
        state.global_step += 1
        state.batch_in_epoch += 1
        state.epoch_loss_sum += loss
        state.epoch_loss_n += 1
        self.budget.stepped(seconds)
        if self.progress is not None:
            # With --max-minutes the bar counts the steps the budget leaves, not every epoch's.
            self.progress.total = self.budget.steps_in_budget(self.elapsed(), state.global_step - 1, self.total_steps)
            self.progress.update(1)
            self.progress.set_postfix(epoch=f"{epoch + 1}/{config.epochs}", loss=f"{loss:.4f}", refresh=False)
        if state.global_step % config.log_every_steps == 0:
            self.logger.write({"type": "step", "epoch": epoch + 1, "step": state.global_step, "loss": loss,
                               "lr": self.schedule.last_lr, "time_s": round(self.elapsed(), 2)})
        info = {"step": state.global_step, "epoch": epoch + 1, "loss": loss, "elapsed_s": self.elapsed()}
        for callback in self.callbacks:
            callback(info)
        if config.val_every_steps and state.global_step % config.val_every_steps == 0:
            self.evaluate()
            self.model.train()
        if config.max_steps is not None and state.global_step >= config.max_steps:
            state.stopped_by = "max_steps"
        elif not self.budget.allows_step(self.elapsed()):
            state.stopped_by = "max_minutes"

    def _end_epoch(self, epoch: int) -> None:
        config, state = self.config, self.state
        epoch_done = state.stopped_by is None
        if state.epoch_loss_n:
            self.logger.write({"type": "epoch", "epoch": epoch + 1, "step": state.global_step,
                               "train_loss": state.epoch_loss_sum / state.epoch_loss_n, "complete": epoch_done,
                               "time_s": round(self.elapsed(), 2)})
        if (not config.val_every_steps or state.stopped_by) and self.budget.fits_closing(self.elapsed()):
            self.evaluate()
        elif state.stopped_by == "max_minutes" and self.val_loader is not None:
            self.note("the time budget is spent: no closing validation; the checkpoint holds the "
                      + ("best validated weights" if state.best is not None else "last weights"))
        if config.patience and state.bad_validations >= config.patience:  # 0 or None: off
            state.stopped_by = state.stopped_by or "early_stopping"
        if epoch_done:
            state.epoch += 1
            state.batch_in_epoch = 0
            state.epoch_loss_sum, state.epoch_loss_n = 0.0, 0
        self._save_state()

    def _finish(self) -> None:
        """The run's end: its stop reason, the checkpoint's final weights or record, a last snapshot."""
        state = self.state
        state.stopped_by = state.stopped_by or "epochs"
        state.finished = True
        state.elapsed_s = self.elapsed()
        if self.val_loader is None or state.best is None or self.config.keep == "last":
            self._save_checkpoint()
        else:
            self._update_training_info()
        self._save_state()

    # -- validation ---------------------------------------------------------------------------

    def evaluate(self) -> None:
        """Validate (unless nothing changed since the last validation); keep the best weights."""
        state = self.state
        if self.val_loader is None or state.validated_step == state.global_step:
            return
        begun = time.perf_counter()
        scores = validation_scores(self.model, self.val_loader, self.objective, self.accelerator, seed=self.config.seed,
                                   progress=self.progress is not None)
        self.budget.validated(time.perf_counter() - begun)
        value = scores[self.metric]
        state.last_val, state.validated_step = value, state.global_step
        improved = state.best is None or value > state.best + self.config.min_delta
        if improved:
            state.best, state.best_epoch, state.bad_validations = value, state.epoch + 1, 0
            state.best_step = state.global_step
            if self.config.keep == "best":
                self._save_checkpoint()
        else:
            state.bad_validations += 1
        self.logger.write({"type": "validation", "epoch": state.epoch + 1, "step": state.global_step, **scores,
                           "best": state.best, "improved": improved, "time_s": round(self.elapsed(), 2)})
        self.note(f"epoch {state.epoch + 1} step {state.global_step}: val loss {scores['loss']:.4f}, "
                  f"{self.metric} {value:.4f}" + (" (best)" if improved else ""))

    # -- saving -------------------------------------------------------------------------------

    def _save_state(self) -> None:
        """A resumable snapshot of weights, optimizer, random state and progress."""
        begun = time.perf_counter()
        self.state.elapsed_s = self.elapsed()
        if self.accelerator.is_main_process:
            self.run.save(self.state.global_step, weights=snapshot_weights(self._unwrapped(), self.info.adapter_checkpoints),
                          optimizer=self.optimizer, state=self.state.to_dict(), rng=True)
        self.accelerator.wait_for_everyone()
        self.budget.saved(time.perf_counter() - begun)

    def _save_checkpoint(self) -> None:
        """The current weights as the run's checkpoint (the harness evaluates it)."""
        from fetal_bench.models import save_checkpoint

        if self.accelerator.is_main_process:
            save_checkpoint(self._unwrapped(), self.out, training=self._training_info(),
                            run_name=self.config.run_name or self.out.name)
        self.accelerator.wait_for_everyone()

    def _update_training_info(self) -> None:
        """Rewrite the checkpoint's training record at the end (the weights stay the best ones)."""
        from fetal_bench.models.checkpoint import update_training_info

        if self.accelerator.is_main_process:
            update_training_info(self.out, json.loads(json.dumps(self._training_info())))
        self.accelerator.wait_for_everyone()

    def _training_info(self) -> dict[str, Any]:
        from fetal_bench.models.checkpoint import portable_reference

        config, data, state = self.config, self.data, self.state
        return {
            "task": self.task.name,
            "training_data": data.training_data,
            "synthetic_share": round(data.synthetic_share, 6),
            "n_train_real": data.n_real,
            "n_train_synthetic": data.n_synthetic,
            "n_validation": 0 if data.validation is None else len(data.validation),
            "epochs": state.epoch + (1 if state.batch_in_epoch else 0),
            "steps": state.global_step,
            "best_metric": None if state.best is None else {"name": f"val_{self.metric}", "value": state.best,
                                                                "epoch": state.best_epoch},
            "last_val_metric": state.last_val,
            "weights": "best validation epoch" if config.keep == "best" and state.best is not None else "last step",
            "stopped_by": state.stopped_by,
            "train_time_s": round(state.elapsed_s, 1),
            "seed": config.seed,
            "optimizer": {"name": config.optimizer, "lr": config.lr, "weight_decay": config.weight_decay,
                          "momentum": config.momentum if config.optimizer == "sgd" else None,
                          "scheduler": config.scheduler},
            "batch_size": config.batch_size,
            "grad_clip": config.grad_clip or None,  # None: no clipping
            "mixed_precision": self.accelerator.mixed_precision,
            "augment": config.augment,
            "init_from": portable_reference(config.init_from),  # config.json is published: no local path
            "data": data.sources,
        }

    # -- small pieces -------------------------------------------------------------------------

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def _unwrapped(self):
        return self.accelerator.unwrap_model(self.model)

    def _loader(self, dataset, batch_size: int, *, shuffle: bool, seed: int, transform=None, drop_last: bool = False):
        from fetal_bench.data.loading import make_dataloader

        spec = self._unwrapped().spec
        # decoded_cache: every epoch (and validation) reads the images decoded once (docs/caching.md).
        return make_dataloader(dataset, image_size=tuple(spec.image_size), channels=spec.channels,
                               normalize=spec.normalize, num_workers=self.config.num_workers, batch_size=int(batch_size),
                               shuffle=shuffle, seed=seed, transform=transform, drop_last=drop_last,
                               decoded_cache=True, **self.data.loader_columns)

    def _progress_bar(self):
        """One bar for the whole run, on stderr (tqdm's default): piped stdout stays clean."""
        if not (self.config.progress and self.accelerator.is_local_main_process):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.total_steps, initial=self.state.global_step, desc=f"training {self.config.model}",
                    unit="step", leave=False, dynamic_ncols=True, file=sys.stderr)

    def _close_progress(self) -> None:
        if self.progress is not None:
            self.progress.close()

    def _result(self, state: TrainerState, *, resumed: bool) -> TrainResult:
        from fetal_bench.models.checkpoint import is_checkpoint_directory, read_checkpoint

        config = self.config
        training = read_checkpoint(self.out).training if is_checkpoint_directory(self.out) else {}
        best = training.get("best_metric") or {}
        return TrainResult(
            output=self.out, model=config.model, task=config.task,
            metric=(best.get("name") or "").removeprefix("val_") or self.task.kind.validation_metric(self.task),
            best_metric=state.best, best_epoch=state.best_epoch,
            epochs_completed=state.epoch, steps=state.global_step, stopped_by=state.stopped_by or "",
            best_step=state.best_step, partial_epoch_steps=state.batch_in_epoch,
            steps_per_epoch=state.steps_per_epoch, recipe=config.recipe,
            train_time_s=round(state.elapsed_s, 1), resumed=resumed,
            n_train=training.get("n_train_real", 0) + training.get("n_train_synthetic", 0),
            training_data=training.get("training_data", "real"), synthetic_share=training.get("synthetic_share", 0.0),
        )


# --------------------------------------------------------------------------------------------
# the pieces a trainer is made of (benchmarks/bench_training.py times optimization_step alone)
# --------------------------------------------------------------------------------------------


def accelerator_for(precision: str, **options: Any):
    """An ``accelerate.Accelerator`` training in ``precision`` ("no", "bf16", "fp16").

    accelerate keeps one precision per process and refuses another once it is set ("AcceleratorState
    has already been initialized"), so a second ``train`` in another precision (a notebook, a sweep,
    fp32 against bf16) would fail. In a single process nothing else shares that state, so it is
    reset first; under a distributed launch the processes' shared state is left alone."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState

    set_before = AcceleratorState._shared_state.get("_mixed_precision")
    if set_before is not None and set_before != precision and PartialState().num_processes == 1:
        AcceleratorState._reset_state()
    return Accelerator(mixed_precision=precision, **options)


def optimization_step(model, batch: dict, objective, optimizer, accelerator, params, *, grad_clip: float | None,
                      seed: int) -> float:
    """Forward under accelerate's autocast, the objective's loss, backward, clipping (unless
    ``grad_clip`` is 0 or None), update."""
    with accelerator.autocast():
        logits = objective.forward(model, batch, seed)
    loss = objective.loss(logits, batch)
    accelerator.backward(loss)
    if grad_clip and accelerator.sync_gradients:
        accelerator.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def validation_scores(model, loader, objective, accelerator, *, seed: int, progress: bool = False) -> dict[str, float]:
    """The objective's validation scores over ``loader``, gathered from every process.
    ``progress``: a bar of its own on stderr (it goes when the pass ends)."""
    import torch

    model.eval()
    collected: dict[str, list] = {}
    if progress:
        from tqdm.auto import tqdm

        loader = tqdm(loader, desc="validating", unit="batch", leave=False, dynamic_ncols=True, file=sys.stderr)
    with torch.no_grad():
        for index, batch in enumerate(loader):
            with accelerator.autocast():
                # A fixed prompt jitter per validation batch: comparable across validations.
                outputs = objective.validation_forward(model, batch, seed * 7_777 + index)
            values = accelerator.gather_for_metrics(objective.validation_values(outputs, batch))
            for name, value in values.items():
                collected.setdefault(name, []).append(value.cpu())
    return objective.validation_scores({name: torch.cat(parts) for name, parts in collected.items()})


def make_optimizer(config: TrainConfig, params):
    import torch

    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def build_model(config: TrainConfig, info, data: TrainingData, *, resumed: bool):
    """The registered model to train: the data's labels for a classifier that learns them; no
    pretrained weights fetched when they are about to be replaced (resume, ``init_from``)."""
    from fetal_bench.models import create_model

    cfg = dict(config.model_cfg)
    if config.image_size is not None:
        cfg["image_size"] = list(config.image_size)
    options = info.builder_options()
    # A classifier learns the data's labels unless its label set is fixed (then the check below
    # compares the two instead).
    if info.classifies and not info.fixed_labels and "labels" in options and "labels" not in cfg:
        cfg["labels"] = list(data.labels)
    if (resumed or config.init_from) and "restore" in options and not info.adapter_checkpoints:
        cfg["restore"] = True  # the weights are about to be replaced: do not fetch pretrained ones
    model = create_model(config.model, **cfg)
    if info.classifies and tuple(model.spec.labels) != tuple(data.labels):
        raise FetalBenchError(f"Model {config.model!r} predicts {list(model.spec.labels)}; the training data has "
                              f"{list(data.labels)}.",
                              "Train a model whose label set matches the data (or exclude classes).")
    if config.init_from and not resumed:
        from fetal_bench.models.checkpoint import read_checkpoint, restore_weights

        restore_weights(model, read_checkpoint(config.init_from))
    return model
