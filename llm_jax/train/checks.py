"""Whether a config can train, checked before anything compiles: each section by its owner.

The train section's checks are here; the model's are ``TransformerConfig.errors``, the data
section's ``data.pipeline.check``, the optimizer's ``optim.errors``, the mesh's
``parallel.errors``, the finetune section's ``freeze.errors``, and what an objective cannot
train is its task's ``errors``. Each failure is one line naming the field and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence

import ml_collections

from llm_jax import config as config_lib
from llm_jax import parallel, tasks
from llm_jax.data import pipeline
from llm_jax.errors import UsageError
from llm_jax.train import epochs, freeze, optim


def train_errors(config: ml_collections.ConfigDict) -> list[str]:
  t, problems = config.train, []
  for name in ('batch_size', 'seq_len', 'steps', 'log_every', 'full_eval_batch_size',
               'keep_checkpoints'):
    if t[name] <= 0:
      problems.append(f'train.{name} must be positive, got {t[name]}')
  if t.microbatches <= 0 or t.batch_size % t.microbatches:
    problems.append(f'train.batch_size={t.batch_size} is not divisible by train.microbatches='
                    f'{t.microbatches}')
  for name in ('eval_every', 'eval_batches', 'checkpoint_every'):
    if t[name] < 0:
      problems.append(f'train.{name} must be >= 0 (0 turns it off), got {t[name]}')
  problems += epochs.errors(t) + epochs.optim_errors(config)
  if t.patience < 0 or (t.patience and not t.select_metric):
    problems.append(f'train.patience={t.patience} needs train.select_metric (the metric to '
                    'watch) and must be >= 0')
  if t.select_metric and not t.eval_every:
    problems.append(f'train.select_metric={t.select_metric!r} is evaluated every '
                    'train.eval_every steps: set train.eval_every > 0')
  m = config.model
  if m.positions == 'learned' and m.kind != 'lstm' and t.seq_len + m.position_offset > m.max_len:
    problems.append(f'train.seq_len={t.seq_len} (+ position_offset {m.position_offset}) '
                    f'exceeds model.max_len={m.max_len} learned positions; raise model.max_len '
                    'or lower train.seq_len')
  return problems


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError on the first field or combination that cannot run."""
  try:
    task = tasks.get(config.objective)
  except UsageError as e:
    raise config_lib.ConfigError(str(e)) from None
  problems = config_lib.model_config(config, vocab_size=1).errors()
  problems += train_errors(config)
  # with train.epochs the steps are known once the data is (epochs.resolve checks them then)
  problems += optim.errors(config.optim, None if config.train.epochs else config.train.steps)
  problems += pipeline.check(config)
  problems += parallel.errors(config.parallel)
  if task.finetunes:
    problems += freeze.errors(config.finetune.freeze, config.finetune.layer_decay)
  kind = config.model.kind
  if kind not in task.model_kinds:
    others = tuple(name for name, t in tasks.TASKS.items() if kind in t.model_kinds)
    problems.append(f'objective={task.name!r} trains model.kind in {task.model_kinds}, not '
                    f'{kind!r}; a {kind} model trains with objective in {others}')
  problems += task.errors(config)
  if problems:
    raise config_lib.ConfigError(problems[0])


def load(spec: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
  """A config file with its overrides applied, validated for training."""
  config = config_lib.load(spec, overrides)
  validate(config)
  return config
