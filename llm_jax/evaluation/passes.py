"""Evaluation steps and passes over batches, shared by training, ``llm-jax eval`` and cv.

Every process feeds its rows of each global batch; the sums come back replicated, so all
processes hold the same figures.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from llm_jax import parallel
from llm_jax.evaluation import metrics as metrics_lib
from llm_jax.models import lstm
from llm_jax.tasks import Task


class RunKeys(NamedTuple):
  init: jax.Array
  step: jax.Array
  eval: jax.Array


def run_keys(seed: int) -> RunKeys:
  """A run's three random streams, split once here: training and ``llm-jax eval`` draw an
  objective's evaluation randomness (MLM masking) from the same ``eval`` key."""
  return RunKeys(*jax.random.split(jax.random.key(seed), 3))


@dataclasses.dataclass
class Evaluator:
  """The jitted evaluation of one model on a mesh: summed metrics of a batch, and for
  labelled tasks the predictions (class probabilities) the metrics rank."""

  mesh: jax.sharding.Mesh
  data_sharding: NamedSharding
  eval_step: Callable
  predict_step: Callable | None
  # a carried model's (truncated BPTT) zero state for a batch of n rows; its eval_step is
  # (params, batch, carry) -> (sums, carry)
  zero_carry: Callable[[int], Any] | None = None


def evaluator(model: nn.Module, task: Task, loss: Callable, mesh: jax.sharding.Mesh,
              param_shardings, eval_key: jax.Array, carried: bool = False) -> Evaluator:
  """``loss`` is ``task.bind(...)``; an objective's own randomness (masking) is fixed by
  ``eval_key``, so every evaluation of a checkpoint gives the same figures. ``carried``
  (``task.carries``): the state runs on from batch to batch; its one-stream batches are
  replicated on every device rather than split."""
  data_sharding = parallel.batch_sharding(mesh)
  replicated = NamedSharding(mesh, PartitionSpec())
  if carried:
    eval_step = jax.jit(lambda params, batch, carry: loss(model, params, batch, carry, eval_key,
                                                          train=False)[1],
                        in_shardings=(param_shardings, replicated, replicated),
                        out_shardings=replicated)
    return Evaluator(mesh, replicated, eval_step, None,
                     functools.partial(lstm.zero_carry, model.cfg))
  eval_step = jax.jit(lambda params, batch: loss(model, params, batch, eval_key, train=False)[1],
                      in_shardings=(param_shardings, data_sharding), out_shardings=replicated)
  predict_step = None
  if task.labelled:
    predict_step = jax.jit(lambda params, batch: task.predict(model, params, batch),
                           in_shardings=(param_shardings, data_sharding),
                           out_shardings=replicated)
  return Evaluator(mesh, data_sharding, eval_step, predict_step)


def process_rows(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """This process's contiguous share of a global batch's rows."""
  n, i = jax.process_count(), jax.process_index()
  return {k: np.split(v, n)[i] for k, v in batch.items()}


def losses(ev: Evaluator, params, batches: Iterable[dict[str, np.ndarray]]) -> dict[str, float]:
  """The objective's loss, accuracy and perplexity summed over ``batches`` (a carried model's
  state running on through them, from zeros)."""
  sums, carry = None, None
  for batch in batches:
    if ev.zero_carry is not None:  # every process feeds the whole (replicated) batch
      carry = ev.zero_carry(len(batch['inputs'])) if carry is None else carry
      out, carry = ev.eval_step(params, parallel.global_batch(batch, ev.data_sharding), carry)
    else:
      out = ev.eval_step(params, parallel.global_batch(process_rows(batch), ev.data_sharding))
    sums = out if sums is None else jax.tree_util.tree_map(jnp.add, sums, out)
  return metrics_lib.summarize(jax.device_get(sums))


def classify(ev: Evaluator, params, batches: Iterable[dict[str, np.ndarray]], num_classes: int
             ) -> tuple[dict[str, float], metrics_lib.Classification | None]:
  """Loss sums and, from the class probabilities, accuracy, F1, ROC-AUC over a split; also
  the accumulator (with its confusion matrix). Regression (one output) gets the loss only."""
  found = metrics_lib.Classification(num_classes) if num_classes > 1 else None
  sums = None
  for batch in batches:
    device_batch = parallel.global_batch(process_rows(batch), ev.data_sharding)
    out = ev.eval_step(params, device_batch)
    sums = out if sums is None else jax.tree_util.tree_map(jnp.add, sums, out)
    if found is not None:
      found.update(batch['labels'], jax.device_get(ev.predict_step(params, device_batch)),
                   batch['example_mask'])
  summary = metrics_lib.summarize(jax.device_get(sums))
  return ({**summary, **found.result()} if found else summary), found


def whole_split(ev: Evaluator, params, batches, num_classes: int) -> dict[str, float]:
  """Every example (or target token) of a split exactly once."""
  if ev.predict_step is not None:
    return classify(ev, params, batches, num_classes)[0]
  return losses(ev, params, batches)
