"""Sequence classification (or regression, one output) with a head on a pretrained body."""

from __future__ import annotations

import dataclasses

import jax

from llm_jax import config as config_lib
from llm_jax import models, objectives
from llm_jax.models import lstm, mlp
from llm_jax.tasks.base import LM_METRICS, Task, lora_config


def logits(model, params, batch: dict[str, jax.Array], rng: jax.Array | None = None,
           train: bool = False) -> jax.Array:
  """A classifier's logits for ``batch['inputs']`` (``[batch, length]``) with its
  ``attention_mask`` (0 on padding); ``token_types`` and ``positions`` are optional. Eval and
  predict turn them into loss sums and probabilities from one forward pass."""
  return model.apply({'params': params}, batch['inputs'], batch.get('positions'),
                     batch.get('attention_mask'), token_types=batch.get('token_types'),
                     deterministic=not train, rngs={'dropout': rng} if train else {})


@dataclasses.dataclass(frozen=True)
class Classification(Task):
  name: str = 'classification'
  model_kinds: tuple[str, ...] = ('decoder', 'encoder', 'encoder_decoder', 'lstm', 'mlp')
  batchings: tuple[str, ...] = ()  # padded, length-bucketed examples (data.loader)
  labelled: bool = True
  finetunes: bool = True

  def loss(self, model, params, batch, rng, train):
    """``batch['labels']`` ``[batch]``, and ``example_mask`` (0 on the padding rows of a last
    partial batch) if any."""
    out = logits(model, params, batch, rng, train)
    return objectives.classification(out, batch['labels'], batch.get('example_mask'))

  def predict(self, model, params, batch):
    """Class probabilities ``[batch, classes]``, or regression values ``[batch]``."""
    return objectives.predictions(logits(model, params, batch))

  def outputs(self, config, label_names):
    if config.data.regression:
      return 1
    return config.finetune.num_labels or len(label_names)

  def model(self, cfg, config, label_names=()):
    f = config.finetune
    return models.build_classifier(
        cfg, self.outputs(config, label_names), pooling=f.pooling, head_dropout=f.head_dropout,
        use_pooler=None if f.pooler == 'auto' else f.pooler == 'yes', lora=lora_config(f))

  def metrics(self, outputs):
    if outputs == 1:
      return ('loss',)  # regression
    names = (*LM_METRICS, 'precision_macro', 'recall_macro', 'f1_macro')
    return names + (('precision', 'recall', 'f1', 'roc_auc') if outputs == 2 else
                    ('roc_auc_macro',))

  def errors(self, config):
    problems = super().errors(config)
    if config.model.kind == 'lstm':
      f = config.finetune
      cfg = config_lib.model_config(config, vocab_size=1)
      problems += lstm.errors(cfg, f.pooling, bool(f.lora_rank) or f.freeze == 'lora')
    if config.model.kind == 'mlp':
      problems += mlp.errors(config_lib.model_config(config, vocab_size=1))
    return problems


TASK = Classification()
