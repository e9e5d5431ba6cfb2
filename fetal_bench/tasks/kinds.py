"""The kinds of task there are, by type name: what :attr:`Task.kind <fetal_bench.tasks.Task.kind>`
looks up. Adding a task type means adding its kind module and listing its instance here."""

from __future__ import annotations

from fetal_bench.errors import FetalBenchError
from fetal_bench.tasks.classification import CLASSIFICATION
from fetal_bench.tasks.kind import TaskKind
from fetal_bench.tasks.segmentation import SEGMENTATION

__all__ = ["CLASSIFICATION", "SEGMENTATION", "TASK_KINDS", "kind_of"]

TASK_KINDS: dict[str, TaskKind] = {kind.name: kind for kind in (CLASSIFICATION, SEGMENTATION)}


def kind_of(task_type: str) -> TaskKind:
    """The kind of tasks (and models) of ``task_type``."""
    try:
        return TASK_KINDS[task_type]
    except KeyError:
        raise FetalBenchError(f"Unknown task type {task_type!r}.", f"Use one of: {', '.join(TASK_KINDS)}.") from None
