"""Optax optimizers by name (``optim.name``), schedules, clipping, decay on matrices only.

``adamw`` (the default) and ``lion`` decay weights decoupled from the gradient, as their papers
do; ``adam`` and ``sgd`` add ``weight_decay * w`` to the gradient first (an L2 penalty, what
``torch.optim.Adam`` / ``SGD(weight_decay=...)`` and Keras' ``adam``/``sgd`` with a regularizer
mean); ``adafactor`` takes optax's own decay rate. Each name reads only its own fields
(``OWN_FIELDS``); one set away from its default for another optimizer is refused by name.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax

from llm_jax import config as config_lib
from llm_jax.models import paths

SCHEDULES = ('cosine', 'linear', 'constant', 'staircase')
STAIRCASE_FIELDS = ('lr_decay', 'decay_every', 'decay_begin', 'decay_every_epochs',
                    'decay_begin_epochs')
# the optim fields each optimizer reads beyond lr, its schedule, weight_decay and clip_norm
OWN_FIELDS = {
    'adamw': ('b1', 'b2', 'eps'),
    'adam': ('b1', 'b2', 'eps'),
    'sgd': ('momentum', 'nesterov'),
    'adafactor': ('decay_rate',),
    'lion': ('b1', 'b2'),
}


def errors(optim: ml_collections.ConfigDict, total_steps: int | None) -> list[str]:
  """What is wrong with the optim section, if anything, one line per problem
  (``total_steps=None``: not known yet, so the warmup is checked only against decay_steps)."""
  o, problems = optim, []
  if o.name not in OWN_FIELDS:
    problems.append(f'optim.name={o.name!r} is not one of {tuple(OWN_FIELDS)}')
  else:
    defaults = config_lib.base().optim
    foreign = sorted({f for own in OWN_FIELDS.values() for f in own} - set(OWN_FIELDS[o.name]))
    problems += [f'optim.{f}={o[f]!r} is not read by optim.name={o.name!r} (it reads '
                 f'{", ".join(OWN_FIELDS[o.name])}); leave it at {defaults[f]!r}'
                 for f in foreign if o[f] != defaults[f]]
  if o.momentum < 0 or (o.nesterov and not o.momentum):
    problems.append(f'optim.momentum={o.momentum} must be >= 0, and > 0 for optim.nesterov')
  if o.weight_decay < 0:
    problems.append(f'optim.weight_decay={o.weight_decay} must be >= 0')
  if o.schedule not in SCHEDULES:
    problems.append(f'optim.schedule={o.schedule!r} is not one of {SCHEDULES}')
  defaults = config_lib.base().optim
  if o.schedule != 'staircase':
    problems += [f'optim.{f}={o[f]!r} is read by optim.schedule="staircase" only; leave it at '
                 f'{defaults[f]!r}' for f in STAIRCASE_FIELDS if o[f] != defaults[f]]
  elif not 0 < o.lr_decay <= 1 or min(o[f] for f in STAIRCASE_FIELDS[1:]) < 0:
    problems.append(f'optim.lr_decay={o.lr_decay} must be in (0, 1] and the decay intervals '
                    '>= 0')
  elif total_steps is not None and not o.decay_every:
    problems.append('optim.schedule="staircase" needs optim.decay_every (steps) or '
                    'optim.decay_every_epochs (with train.epochs)')
  if o.lr <= 0 or o.min_lr < 0 or o.min_lr > o.lr:
    problems.append(f'need 0 <= optim.min_lr <= optim.lr and lr > 0, got lr={o.lr} '
                    f'min_lr={o.min_lr}')
  decay = o.decay_steps or total_steps
  if decay is not None and not 0 <= o.warmup_steps <= decay:
    problems.append(f'optim.warmup_steps={o.warmup_steps} must be within [0, decay steps='
                    f'{decay}]')
  elif decay is not None and o.schedule == 'cosine' and o.warmup_steps == decay:
    problems.append(f'optim.warmup_steps={o.warmup_steps} leaves no steps for the cosine decay '
                    f'(decay steps={decay}): lower it or raise optim.decay_steps')
  return problems


def staircase(lr: float, decay: float, every: int, begin: int) -> optax.Schedule:
  """``lr`` for the first ``begin`` steps, then ``lr * decay**k`` over the ``k``-th interval of
  ``every`` steps: the paper's "x0.5 after each epoch from the 5th" is ``begin`` = 4 epochs.
  A function of the step alone, so a resumed run continues it exactly."""
  def at(step):
    k = jnp.where(step >= begin, (step - begin) // every + 1, 0)
    return lr * decay ** k.astype(jnp.float32)
  return at


def schedule(optim: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
  """Linear warmup to ``lr``, then cosine or linear decay to ``min_lr``, constant, or the
  staircase (each over steps counted from the end of the warmup).

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
  elif optim.schedule == 'staircase':
    after = staircase(lr, optim.lr_decay, optim.decay_every, optim.decay_begin)
  else:
    after = optax.constant_schedule(lr)
  return optax.join_schedules([ramp, after], [warmup])


def decay_mask(params):
  """Weight decay on matrices (kernels, embeddings) only, never on biases or norm scales; a
  scanned leaf's leading axis stacks layers, so its own rank is one less."""
  def is_matrix(keys, p):
    return p.ndim - paths.is_scanned(paths.join(keys)) >= 2
  return jax.tree_util.tree_map_with_path(is_matrix, params)


def _optimizer(o: ml_collections.ConfigDict, lr: optax.Schedule) -> optax.GradientTransformation:
  """The named optax optimizer (clipping comes before it, in ``make``)."""
  decay = o.weight_decay
  if o.name == 'adamw':
    return optax.adamw(lr, b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=decay, mask=decay_mask)
  if o.name == 'lion':
    return optax.lion(lr, b1=o.b1, b2=o.b2, weight_decay=decay, mask=decay_mask)
  if o.name == 'adafactor':
    return optax.adafactor(lr, decay_rate=o.decay_rate, weight_decay_rate=decay or None,
                           weight_decay_mask=decay_mask)
  coupled = [optax.add_decayed_weights(decay, decay_mask)] if decay else []
  if o.name == 'adam':
    return optax.chain(*coupled, optax.adam(lr, b1=o.b1, b2=o.b2, eps=o.eps))
  return optax.chain(*coupled, optax.sgd(lr, momentum=o.momentum or None, nesterov=o.nesterov))


def make(optim: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
  parts = []
  if optim.clip_norm > 0:
    parts.append(optax.clip_by_global_norm(optim.clip_norm))
  parts.append(_optimizer(optim, schedule(optim, total_steps)))
  return optax.chain(*parts)
