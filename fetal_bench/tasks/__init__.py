"""Benchmark tasks: frozen metadata objects in a registry (`get_task`, `list_tasks`)."""

from fetal_bench.tasks.base import Task, TaskDataset
from fetal_bench.tasks.registry import TASKS, get_task, list_tasks

__all__ = ["TASKS", "Task", "TaskDataset", "get_task", "list_tasks"]
