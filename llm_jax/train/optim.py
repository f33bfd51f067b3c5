"""Optax optimizers: AdamW with decoupled decay on matrices only, schedules, clipping."""

from __future__ import annotations

import jax
import ml_collections
import optax


def schedule(optim: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
  """Linear warmup from 0 to ``lr``, then cosine or linear decay to ``min_lr``, or constant."""
  decay_steps = optim.decay_steps or total_steps
  if optim.schedule == 'cosine':
    return optax.warmup_cosine_decay_schedule(0.0, optim.lr, optim.warmup_steps, decay_steps,
                                              end_value=optim.min_lr)
  warmup = optax.linear_schedule(0.0, optim.lr, optim.warmup_steps)
  if optim.schedule == 'linear':
    after = optax.linear_schedule(optim.lr, optim.min_lr, decay_steps - optim.warmup_steps)
  else:
    after = optax.constant_schedule(optim.lr)
  return optax.join_schedules([warmup, after], [optim.warmup_steps])


def decay_mask(params):
  """Weight decay on matrices (kernels, embeddings) only, never on biases or norm scales."""
  return jax.tree_util.tree_map(lambda p: p.ndim >= 2, params)


def make(optim: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
  parts = []
  if optim.clip_norm > 0:
    parts.append(optax.clip_by_global_norm(optim.clip_norm))
  parts.append(optax.adamw(schedule(optim, total_steps), b1=optim.b1, b2=optim.b2,
                           eps=optim.eps, weight_decay=optim.weight_decay, mask=decay_mask))
  return optax.chain(*parts)
