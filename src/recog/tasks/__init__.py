"""Kinds of recognition behind one seam: see :mod:`recog.tasks.base`."""

from recog.tasks.base import Metric, Task, get_task, register_task, require_task, task_names

__all__ = ["Metric", "Task", "get_task", "register_task", "require_task", "task_names"]
