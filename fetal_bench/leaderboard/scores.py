"""Reading scores out of validated result files, for the pages that show them.

These helpers decide *what* a row's numbers are (a score block, a group's score, the worst group
and the gap, the kind of training data, whether the run was zero-shot); :mod:`site` decides how
they look. Result files have passed :func:`~fetal_bench.leaderboard.loading.load_results`, so the
shape of ``scores`` and ``groups`` is known; values inside may still be null (with a reason).
"""

from __future__ import annotations

from typing import Any, Sequence

from fetal_bench.evaluation.results import TRAINING_DATA
from fetal_bench.leaderboard.loading import ResultEntry
from fetal_bench.leaderboard.ranking import RankedRow

# The values a result file's ``submission.training_data`` may take (the page's filter chips).
TRAINING_KINDS = TRAINING_DATA


def number(value: Any) -> float | None:
    """``value`` as a float if it is a JSON number (``True`` is not a score), else None."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def entry_score(entry: ResultEntry, metric: str) -> dict | None:
    """The ``{"value", "ci95", ...}`` block of ``metric`` in the file's overall scores, if any."""
    score = entry.data["scores"].get(metric)
    return score if isinstance(score, dict) else None


def training_kind(entry: ResultEntry) -> str:
    """The submission's training data (one of :data:`TRAINING_KINDS`), or ``"unknown"``."""
    kind = entry.data["submission"].get("training_data")
    return kind if kind in TRAINING_KINDS else "unknown"


def is_zero_shot(entry: ResultEntry) -> bool:
    """No image of the task's dataset used in training: the file's ``zero_shot`` where it says,
    else the task's protocol (a ``*-zero-shot`` task forbids it), else no training at all."""
    said = entry.data["submission"].get("zero_shot")
    if isinstance(said, bool):
        return said
    return "zero-shot" in entry.task or entry.data["submission"].get("training_data") == "none"


def group_columns(board_rows: Sequence[RankedRow], group_order: Sequence[str]) -> list[tuple[str, list[str]]]:
    """(column, values) for every grouping present in the rows: the task's order first, then by name."""
    present: dict[str, set[str]] = {}
    for row in board_rows:
        for column, block in row.entry.data["groups"].items():
            present.setdefault(column, set()).update(block["values"])
    ordered = [c for c in group_order if c in present] + sorted(c for c in present if c not in group_order)
    return [(c, sorted(present[c])) for c in ordered]


def group_score(entry: ResultEntry, column: str, value: str, metric: str) -> dict | None:
    """The score block of ``metric`` for the rows whose ``column`` is ``value``, if reported."""
    block = entry.data["groups"].get(column, {}).get("values", {}).get(value)
    if not block:
        return None
    score = block["scores"].get(metric)
    return score if isinstance(score, dict) else None


def worst_and_gap(entry: ResultEntry, column: str, metric: str,
                  higher_is_better: bool) -> tuple[str | None, float | None]:
    """The file's worst group and gap where it gives them; computed from the group scores otherwise."""
    block = entry.data["groups"].get(column)
    if not block:
        return None, None
    scored: dict[str, float] = {}
    for name, group in block["values"].items():
        value = number((group["scores"].get(metric) or {}).get("value"))
        if value is not None:
            scored[name] = value
    worst, gap = block.get("worst"), number(block.get("gap"))
    if scored:
        ordered = sorted(scored.items(), key=lambda kv: (kv[1] if higher_is_better else -kv[1], kv[0]))
        if worst is None:
            worst = ordered[0][0]
        if gap is None:
            gap = abs(ordered[-1][1] - ordered[0][1])
    return worst, gap


__all__ = ["TRAINING_KINDS", "entry_score", "group_columns", "group_score", "is_zero_shot", "number",
           "training_kind", "worst_and_gap"]
