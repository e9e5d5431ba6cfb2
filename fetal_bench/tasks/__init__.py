"""Benchmark tasks: frozen metadata objects in a registry (`get_task`, `list_tasks`), and the
kinds that score, run and train them (``task.kind``: :mod:`~fetal_bench.tasks.classification`,
:mod:`~fetal_bench.tasks.segmentation`)."""

from fetal_bench.tasks.base import Task, TaskDataset, TaskType
from fetal_bench.tasks.registry import TASKS, get_task, list_tasks

__all__ = ["TASKS", "Task", "TaskDataset", "TaskType", "get_task", "list_tasks"]
