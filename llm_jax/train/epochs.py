"""``train.epochs``: a run's length, and optionally its eval and checkpoint intervals, in
passes over the training data instead of steps.

An epoch is ``data.epoch_steps()`` optimizer steps: a labelled split's examples over the batch
size (the loader's own per-epoch permutation, the last partial batch dropped), or, for a
language model, the split's tokens over the tokens of a batch (nanoGPT's sense of an epoch
over random windows; packed rows count their framed tokens). The resolved steps replace
``train.steps`` in the config the workdir records, so a resumed run counts the same.
"""

from __future__ import annotations

import sys

import ml_collections

from llm_jax import config as config_lib
from llm_jax.train import optim

FIELDS = ('epochs', 'eval_every_epochs', 'checkpoint_every_epochs')


def errors(train: ml_collections.ConfigDict) -> list[str]:
  problems = [f'train.{name} must be >= 0 (0: off), got {train[name]}'
              for name in FIELDS if train[name] < 0]
  if not train.epochs and (train.eval_every_epochs or train.checkpoint_every_epochs):
    problems.append('train.eval_every_epochs and train.checkpoint_every_epochs count epochs of '
                    'train.epochs: set train.epochs too (or use train.eval_every)')
  return problems


def optim_errors(config: ml_collections.ConfigDict) -> list[str]:
  o = config.optim
  if not config.train.epochs and (o.decay_every_epochs or o.decay_begin_epochs):
    return ['optim.decay_every_epochs and optim.decay_begin_epochs count epochs of '
            'train.epochs: set train.epochs too (or use optim.decay_every, optim.decay_begin)']
  return []


def resolve(config: ml_collections.ConfigDict, epoch_steps: int) -> ml_collections.ConfigDict:
  """``config`` with ``train.steps`` (and the intervals set in epochs) in steps; unchanged
  when ``train.epochs`` is 0. Says the count on stderr, before anything trains."""
  t = config.train
  if not t.epochs:
    return config
  if epoch_steps < 1:
    raise config_lib.ConfigError(
        f'an epoch of the training split is less than one batch of train.batch_size='
        f'{t.batch_size}; lower the batch size or use train.steps')
  resolved = config_lib.from_json(config_lib.to_json(config))
  r = resolved.train
  r.steps = t.epochs * epoch_steps
  if t.eval_every_epochs:
    r.eval_every = t.eval_every_epochs * epoch_steps
  if t.checkpoint_every_epochs:
    r.checkpoint_every = t.checkpoint_every_epochs * epoch_steps
  o = config.optim
  if o.decay_every_epochs:
    resolved.optim.decay_every = o.decay_every_epochs * epoch_steps
  if o.decay_begin_epochs:
    resolved.optim.decay_begin = o.decay_begin_epochs * epoch_steps
  problems = optim.errors(resolved.optim, r.steps)
  if problems:
    raise config_lib.ConfigError(f'{problems[0]} (train.epochs={t.epochs} is {r.steps} steps)')
  print(f'train.epochs={t.epochs}: {epoch_steps:,} steps per epoch of batch {t.batch_size}, '
        f'{r.steps:,} steps' + (f', evaluated every {r.eval_every:,}' if t.eval_every_epochs
                                 else ''), file=sys.stderr)
  return resolved
