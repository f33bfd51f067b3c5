"""Optax optimizers: AdamW with decoupled decay on matrices only, schedules, clipping."""

from __future__ import annotations

import jax
import ml_collections
import optax

from llm_jax.models import paths

SCHEDULES = ('cosine', 'linear', 'constant')


def errors(optim: ml_collections.ConfigDict, total_steps: int) -> list[str]:
  """What is wrong with the optim section, if anything, one line per problem."""
  o, problems = optim, []
  if o.schedule not in SCHEDULES:
    problems.append(f'optim.schedule={o.schedule!r} is not one of {SCHEDULES}')
  if o.lr <= 0 or o.min_lr < 0 or o.min_lr > o.lr:
    problems.append(f'need 0 <= optim.min_lr <= optim.lr and lr > 0, got lr={o.lr} '
                    f'min_lr={o.min_lr}')
  decay = o.decay_steps or total_steps
  if not 0 <= o.warmup_steps <= decay:
    problems.append(f'optim.warmup_steps={o.warmup_steps} must be within [0, decay steps='
                    f'{decay}]')
  return problems


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
  """Weight decay on matrices (kernels, embeddings) only, never on biases or norm scales; a
  scanned leaf's leading axis stacks layers, so its own rank is one less."""
  def is_matrix(keys, p):
    return p.ndim - paths.is_scanned(paths.join(keys)) >= 2
  return jax.tree_util.tree_map_with_path(is_matrix, params)


def make(optim: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
  parts = []
  if optim.clip_norm > 0:
    parts.append(optax.clip_by_global_norm(optim.clip_norm))
  parts.append(optax.adamw(schedule(optim, total_steps), b1=optim.b1, b2=optim.b2,
                           eps=optim.eps, weight_decay=optim.weight_decay, mask=decay_mask))
  return optax.chain(*parts)
