"""What every kind's scores share: the bootstrap settings, the score entry, per-group breakdowns.

Intervals resample the bootstrap unit of the task (patients, subjects), never single images:
images of one patient are correlated, and treating them as independent would make intervals
too narrow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from fetal_bench.metrics.registry import LOWER_IS_BETTER

if TYPE_CHECKING:  # typing only
    from fetal_bench.tasks.base import Task

__all__ = ["BootstrapConfig", "group_breakdown", "score_entry"]


@dataclass
class BootstrapConfig:
    n_resamples: int = 1000
    seed: int = 0
    confidence: float = 0.95


def score_entry(value: float | None, ci95: tuple[float | None, float | None] = (None, None),
                reason: str | None = None) -> dict:
    """One score as the result schema wants it; NaN/inf become null with a reason."""
    def clean(x):
        if x is None:
            return None
        x = float(x)
        return x if math.isfinite(x) else None

    entry = {"value": clean(value), "ci95": [clean(ci95[0]), clean(ci95[1])]}
    if entry["value"] is None and reason is None:
        reason = "not computable on this data"
    if reason:
        entry["reason"] = reason
    return entry


def group_breakdown(task: Task, groups: dict[str, np.ndarray], score_rows: Callable[[np.ndarray], dict],
                    subjects: np.ndarray) -> dict:
    """Scores per value of each grouping column, plus the worst and best group and their gap."""
    out = {}
    for column, values in groups.items():
        entries = {}
        for value in sorted({str(v) for v in values}):
            rows = np.flatnonzero(np.array([str(v) == value for v in values]))
            entries[value] = {"n_samples": int(rows.size), "n_subjects": int(len(set(subjects[rows]))),
                              "scores": score_rows(rows)}
        main = {name: e["scores"][task.main_score]["value"] for name, e in entries.items()
                if e["scores"][task.main_score]["value"] is not None}
        worst = best = gap = None
        if main:
            lower_better = task.main_score in LOWER_IS_BETTER
            ordered = sorted(main, key=lambda name: main[name], reverse=lower_better)
            worst, best = ordered[0], ordered[-1]
            gap = abs(main[best] - main[worst])
        out[column] = {"values": entries, "worst": worst, "best": best, "gap": gap}
    return out
