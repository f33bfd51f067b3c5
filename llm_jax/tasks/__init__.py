"""The registry of tasks: one module per objective, each a ``Task`` (see ``base``).

``get(config.objective)`` is the only place an objective's name is looked at; every other
module asks the task it returns. A new objective is a new module here and one line below.
"""

from __future__ import annotations

from collections.abc import Mapping

from llm_jax.errors import UsageError
from llm_jax.tasks import (
  causal_lm,
  classification,
  masked_lm,
  mlm_nsp,
  seq2seq,
  sft,
  span_corruption,
)
from llm_jax.tasks.base import Loss, Packing, Task

TASKS: dict[str, Task] = {t.TASK.name: t.TASK for t in (causal_lm, masked_lm, mlm_nsp,
                                                         span_corruption, classification, sft,
                                                         seq2seq)}


def get(name: str) -> Task:
  if name not in TASKS:
    raise UsageError(f'objective={name!r} is not one of {tuple(TASKS)}')
  return TASKS[name]


def bind(name: str, vocab_size: int, special: Mapping[str, int], config=None) -> Loss:
  """The loss of task ``name`` with the token ids it needs from a tokenizer's
  ``vocab_size`` and ``special`` map (names such as pad, eos, mask -> ids), and the rates of
  ``config`` (None: the defaults)."""
  return get(name).bind(vocab_size, special, config)


__all__ = ['TASKS', 'Loss', 'Packing', 'Task', 'bind', 'get']
