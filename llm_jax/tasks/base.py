"""The task interface: everything that changes with the objective, declared in one object.

A task joins a model's forward pass to an objective's loss and says what the rest of the
code must do for it: which special tokens it reads, how a document becomes packed rows,
which model it trains, which metrics its evaluation reports and which of them can select a
checkpoint, and what a trained model predicts. The data pipeline, the trainer, evaluation,
prediction and export ask the task; none of them compares objective names.

A loss is ``loss(model, params, batch, rng, train) -> (loss, summed metrics)``; randomness
an objective needs (dropout, masking) comes from ``rng``, so a resumed run masks exactly as
the uninterrupted one. Token ids a loss needs (the mask id, EOS) are bound by ``bind`` from
a tokenizer's special-token map. A task whose model carries a state from batch to batch
(``carries``: truncated BPTT) binds ``carried_loss(model, params, batch, carry, rng, train) ->
(loss, (summed metrics, carry))`` instead, and the trainer keeps the carry in its state.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from llm_jax import config as config_lib
from llm_jax import models
from llm_jax.errors import UsageError
from llm_jax.models import TransformerConfig

Loss = Callable[..., tuple[jax.Array, dict[str, jax.Array]]]


def lora_config(finetune: ml_collections.ConfigDict) -> models.LoraConfig | None:
  """The finetune section's LoRA adapters (None when ``lora_rank`` is 0)."""
  f = finetune
  return (models.LoraConfig(rank=f.lora_rank, alpha=f.lora_alpha, dropout=f.lora_dropout,
                            targets=tuple(f.lora_targets)) if f.lora_rank else None)
# the whole-split figures every task's evaluation reports (loss sums -> means)
LM_METRICS = ('loss', 'perplexity', 'accuracy')


class Packing(NamedTuple):
  """How a task's documents become packed rows: ``frame(encoded)`` -> token features of one
  document (``encoded``: what the pipeline made of a record, as ``Task.reads`` asks),
  ``lengths`` the packed row length of each feature, ``finish(rows)`` -> the batch the loss
  reads (from grain's rows with ``<feature>_segment_ids``/``_positions``). ``whole``: examples
  are never cut across rows (first-fit packing pads rows instead; documents are cut to fill).
  """

  frame: Callable[[Any], dict[str, np.ndarray]]
  lengths: dict[str, int]
  finish: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
  whole: bool = False


@dataclasses.dataclass(frozen=True)
class Task(abc.ABC):
  """Defaults of a language-modelling task; each objective's module overrides what differs."""

  name: str
  model_kinds: tuple[str, ...]  # the model.kind values it trains
  needs: tuple[str, ...] = ()  # special tokens its framing and loss read
  # data.batching values it accepts; (): it batches its own way and ignores the field
  batchings: tuple[str, ...] = ('packed',)
  # labelled examples (text, label) rather than documents; its model is a classifier
  labelled: bool = False
  # trains under the finetune section: freezing specs, layer decay, LoRA adapters
  finetunes: bool = False
  # what the pipeline makes of a record for ``packing``'s frame: 'text' (its token ids) or
  # 'conversation' (ids and a 0/1 array of those trained on: data/chat.py)
  reads: str = 'text'

  @abc.abstractmethod
  def loss(self, model: nn.Module, params, batch: dict[str, jax.Array], rng: jax.Array,
           train: bool, **ids):
    """``(mean loss, summed metrics)`` of ``batch``; each objective's module defines it."""

  def token_ids(self, vocab_size: int, special: Mapping[str, int],
                config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The keyword arguments ``loss`` takes beside the batch: token ids, and the rates of
    the objective's section of ``config``."""
    del vocab_size, special, config
    return {}

  def bind(self, vocab_size: int, special: Mapping[str, int],
           config: ml_collections.ConfigDict | None = None) -> Loss:
    """``loss`` with the token ids and rates it needs (``config``: the run's; None: the
    defaults); call it as ``loss(model, params, batch, rng, train)``."""
    self.check_special(special)
    ids = self.token_ids(vocab_size, special, config or config_lib.base())
    loss = self.carried_loss if config is not None and self.carries(config) else self.loss
    return functools.partial(loss, **ids) if ids else loss

  def carries(self, config: ml_collections.ConfigDict) -> bool:
    """Whether ``config``'s model carries a state from each batch into the next."""
    del config
    return False

  def carried_loss(self, model: nn.Module, params, batch: dict[str, jax.Array], carry: Any,
                   rng: jax.Array, train: bool, **ids):
    """``(loss, (summed metrics, the state the batch ends in))`` from the state ``carry``."""
    raise UsageError(f'objective {self.name!r} carries no state between batches')

  def check_special(self, special: Mapping[str, int]) -> None:
    missing = [n for n in self.needs if n not in special]
    if missing:
      raise UsageError(f'objective {self.name!r} needs the tokenizer\'s {", ".join(missing)} '
                       f'token(s); it has {", ".join(sorted(special)) or "no special tokens"}: '
                       'use a sentencepiece or WordPiece tokenizer')

  def packing(self, special: Mapping[str, int], config: ml_collections.ConfigDict) -> Packing:
    """How ``config``'s documents become rows (``train.seq_len`` long) for this task."""
    raise UsageError(f'objective {self.name!r} reads labelled examples, not packed documents')

  def outputs(self, config: ml_collections.ConfigDict, label_names: tuple[str, ...]) -> int:
    """The classifier head's width (0: a language model, whose head is the vocabulary)."""
    del config, label_names
    return 0

  def model(self, cfg: TransformerConfig, config: ml_collections.ConfigDict,
            label_names: tuple[str, ...] = ()) -> nn.Module:
    del config, label_names
    return models.build(cfg)

  def metrics(self, outputs: int) -> tuple[str, ...]:
    """The whole-split metrics its evaluation reports, any of which can select a checkpoint."""
    del outputs
    return LM_METRICS

  def predict(self, model: nn.Module, params, batch: dict[str, jax.Array]) -> jax.Array:
    """What a trained model outputs for ``batch``: labelled tasks' class probabilities."""
    raise UsageError(f'objective {self.name!r} trains a language model, not a classifier: '
                     'predict labels with a workdir of objective="classification"')

  def errors(self, config: ml_collections.ConfigDict) -> list[str]:
    """What this task cannot train in ``config`` (beyond each section's own checks)."""
    problems = []
    if self.batchings and config.data.batching not in self.batchings:
      problems.append(f'data.batching={config.data.batching!r} does not serve objective '
                      f'{self.name!r}; it needs data.batching in {self.batchings}')
    if not self.labelled:
      d = config.data
      if d.train_examples or d.cv_folds:
        problems.append(f'data.train_examples={d.train_examples}, data.cv_folds={d.cv_folds}: '
                        'subsets and folds are of labelled data; they need '
                        'objective="classification"')
    return problems
