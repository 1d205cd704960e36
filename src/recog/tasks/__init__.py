"""Kinds of recognition behind one seam: see :mod:`recog.tasks.base`."""

from recog.tasks.base import (EvaluationResult, Metric, Task, TrainResult, get_task, register_task, require_task,
                              task_names)

__all__ = ["EvaluationResult", "Metric", "Task", "TrainResult", "get_task", "register_task", "require_task",
           "task_names"]
