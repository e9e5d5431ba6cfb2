"""When a training run steps, and how fast it learns: the time budget and the learning-rate schedule.

Both are stateless apart from what they measure, so a resumed run needs only its step and
elapsed time to continue where it stopped.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # typing only
    from fetal_bench.training.config import TrainConfig

__all__ = ["Budget", "LearningRateSchedule", "epoch_seed"]


class Budget:
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

    def steps_in_budget(self, elapsed_s: float, done: int, total: int) -> int:
        """The steps the run will have made when it ends: ``total`` without a budget (or before a
        step was timed), else ``done`` plus the steps that still fit, at most ``total`` (what a
        progress bar counts down to)."""
        if self.budget_s is None or not self.step_s:
            return total
        fit = int(max(0.0, self.budget_s - elapsed_s - self.closing_s()) // self.step_s)
        return max(done + 1, min(total, done + 1 + fit))

    def allows_step(self, elapsed_s: float) -> bool:
        if self.budget_s is None or self.step_s is None:
            return True
        return elapsed_s + self.step_s + self.closing_s() <= self.budget_s


class LearningRateSchedule:
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


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919) % (2**63 - 1)

