"""Which checkpoint a run keeps as its best: a whole-validation metric and its direction."""

from __future__ import annotations

import math

from llm_jax.errors import UsageError
from llm_jax.tasks import Task

# selection metrics that improve downwards; every other one (accuracy, f1, ...) improves upwards
MINIMIZED = ('loss', 'perplexity')


def check_select_metric(metric: str, task: Task, outputs: int) -> None:
  if metric and metric not in task.metrics(outputs):
    raise UsageError(f'train.select_metric={metric!r} is not a validation metric of this run; '
                     f'use one of {task.metrics(outputs)}')


def improved(metric: str, value: float, best: float | None) -> bool:
  """Whether ``value`` of ``metric`` beats ``best`` (ties do not: the earlier step stays)."""
  if math.isnan(value):
    return False
  if best is None:
    return True
  return value < best if metric in MINIMIZED else value > best
