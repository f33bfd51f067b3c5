"""Optax optimizers: AdamW with decoupled decay on matrices only, schedules, clipping."""

from __future__ import annotations

import jax
import ml_collections
import optax


def schedule(optim: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
  """Linear warmup to ``lr``, then cosine or linear decay to ``min_lr``, or constant.

  The warmup is nanoGPT's, ``lr * (step + 1) / (warmup + 1)``: starting at zero instead would make
  the first update a no-op and shift every later step of a reproduced recipe by one.
  """
  lr, warmup = optim.lr, optim.warmup_steps
  decay_steps = (optim.decay_steps or total_steps) - warmup
  ramp = optax.linear_schedule(lr / (warmup + 1), lr, warmup)
  if optim.schedule == 'cosine':
    after = optax.cosine_decay_schedule(lr, decay_steps, alpha=optim.min_lr / lr)
  elif optim.schedule == 'linear':
    after = optax.linear_schedule(lr, optim.min_lr, decay_steps)
  else:
    after = optax.constant_schedule(lr)
  return optax.join_schedules([ramp, after], [warmup])


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
