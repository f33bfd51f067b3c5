"""Evaluation passes over batches, shared by training, ``llm-jax eval`` and ``llm-jax cv``.

Every process feeds its rows of each global batch; the sums come back replicated, so all
processes hold the same figures.
"""

from __future__ import annotations

import math
from typing import Iterable

import jax
import jax.numpy as jnp
import numpy as np

from llm_jax import metrics as metrics_lib
from llm_jax import objectives, parallel
from llm_jax.errors import UsageError

# selection metrics that improve downwards; every other one (accuracy, f1, ...) improves upwards
MINIMIZED = ('loss', 'perplexity')


def process_rows(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """This process's contiguous share of a global batch's rows."""
  n, i = jax.process_count(), jax.process_index()
  return {k: np.split(v, n)[i] for k, v in batch.items()}


def losses(setup, params, batches: Iterable[dict[str, np.ndarray]]) -> dict[str, float]:
  """The objective's loss, accuracy and perplexity summed over ``batches``."""
  sums = None
  for batch in batches:
    out = setup.eval_step(params, parallel.global_batch(process_rows(batch), setup.data_sharding))
    sums = out if sums is None else jax.tree_util.tree_map(jnp.add, sums, out)
  return objectives.summarize(jax.device_get(sums))


def classify(setup, params, batches: Iterable[dict[str, np.ndarray]], num_classes: int
             ) -> tuple[dict[str, float], metrics_lib.Classification | None]:
  """Loss sums and, from the class probabilities, accuracy, F1, ROC-AUC over a split; also
  the accumulator (with its confusion matrix). Regression (one output) gets the loss only."""
  found = metrics_lib.Classification(num_classes) if num_classes > 1 else None
  sums = None
  for batch in batches:
    device_batch = parallel.global_batch(process_rows(batch), setup.data_sharding)
    out = setup.eval_step(params, device_batch)
    sums = out if sums is None else jax.tree_util.tree_map(jnp.add, sums, out)
    if found is not None:
      found.update(batch['labels'], jax.device_get(setup.predict_step(params, device_batch)),
                   batch['example_mask'])
  summary = objectives.summarize(jax.device_get(sums))
  return ({**summary, **found.result()} if found else summary), found


def whole_split(setup, params, batches, num_classes: int) -> dict[str, float]:
  """Every example (or target token) of a split exactly once."""
  if setup.predict_step is not None:
    return classify(setup, params, batches, num_classes)[0]
  return losses(setup, params, batches)


def selectable(objective: str, num_classes: int) -> tuple[str, ...]:
  """The whole-split metrics a run of ``objective`` reports, any of which can select."""
  if objective == 'classification' and num_classes == 1:
    return ('loss',)  # regression
  names = ('loss', 'perplexity', 'accuracy')
  if objective != 'classification':
    return names
  names += ('precision_macro', 'recall_macro', 'f1_macro')
  return names + (('precision', 'recall', 'f1', 'roc_auc') if num_classes == 2 else
                  ('roc_auc_macro',))


def check_select_metric(metric: str, objective: str, num_classes: int) -> None:
  if metric and metric not in selectable(objective, num_classes):
    raise UsageError(f'train.select_metric={metric!r} is not a validation metric of this run; '
                      f'use one of {selectable(objective, num_classes)}')


def improved(metric: str, value: float, best: float | None) -> bool:
  """Whether ``value`` of ``metric`` beats ``best`` (ties do not: the earlier step stays)."""
  if math.isnan(value):
    return False
  if best is None:
    return True
  return value < best if metric in MINIMIZED else value > best
