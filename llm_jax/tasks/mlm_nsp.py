"""BERT's full pretraining objective: masked LM plus next-sentence prediction on sentence pairs.

Rows are ``[CLS] A [SEP] B [SEP]`` pairs (``data/nsp.py``), padded, not packed: the pooled
[CLS] vector must see one pair. The loss is the MLM mean over the masked tokens plus the NSP
mean over the pairs, as ``BertForPreTraining`` sums them; evaluation reports both accuracies
(``accuracy`` is the masked tokens', ``nsp_accuracy`` the pairs').
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from llm_jax import objectives
from llm_jax.errors import UsageError
from llm_jax.tasks.base import LM_METRICS
from llm_jax.tasks.masked_lm import MaskedLM, corrupt


@dataclasses.dataclass(frozen=True)
class MaskedLMNextSentence(MaskedLM):
  name: str = 'mlm_nsp'
  batchings: tuple[str, ...] = ()  # sentence-pair rows of its own
  reads: str = 'sentence_pairs'

  def loss(self, model, params, batch, rng, train, *, vocab_size, mask_id, special_ids,
           rates=(0.15, 0.8, 0.1)):
    """``batch``: ``inputs``, ``attention_mask``, ``token_types``, ``next_labels`` (0: B
    follows A, 1: B is random) and ``example_mask`` (0 on a last batch's padding rows)."""
    mask_rng, dropout_rng = jax.random.split(rng)
    tokens = batch['inputs']
    example_mask = batch.get('example_mask')
    if example_mask is not None:  # padding rows predict nothing
      tokens = jnp.where(example_mask[:, None] > 0, tokens, special_ids[0])
    inputs, predict_at, weights = corrupt(mask_rng, {**batch, 'inputs': tokens}, vocab_size,
                                          mask_id, special_ids, rates)
    mlm_logits, nsp_logits = model.apply(
        {'params': params}, inputs, None, batch['attention_mask'],
        token_types=batch['token_types'], deterministic=not train,
        rngs={'dropout': dropout_rng}, predict_at=predict_at, method='pretrain')
    mlm_loss, metrics = objectives.masked_lm(
        mlm_logits, jnp.take_along_axis(tokens, predict_at, axis=1), weights)
    nsp_loss, nsp = objectives.classification(nsp_logits, batch['next_labels'], example_mask)
    metrics.update(nsp_nll_sum=nsp['nll_sum'], nsp_correct_sum=nsp['correct_sum'],
                   nsp_examples=nsp['tokens'])
    return mlm_loss + nsp_loss, metrics

  def packing(self, special, config):
    """Refused: the pipeline builds this task's pair rows (``reads``), never packed ones, and
    masked LM's packing would silently train without pairs."""
    del special, config
    raise UsageError('objective "mlm_nsp" reads sentence pairs (data/nsp.py), not packed rows')

  def metrics(self, outputs):
    del outputs
    return (*LM_METRICS, 'nsp_loss', 'nsp_accuracy')

  def errors(self, config):
    problems = super().errors(config)
    m = config.model
    if m.kind == 'encoder' and not (m.nsp_head and m.pooler):
      problems.append('objective="mlm_nsp" trains BERT\'s next-sentence head on the pooled '
                      '[CLS]: set model.nsp_head=true and model.pooler=true')
    if m.kind == 'encoder' and m.type_vocab_size < 2:
      problems.append('objective="mlm_nsp" tells the two segments apart by token type: set '
                      'model.type_vocab_size=2')
    return problems


TASK = MaskedLMNextSentence()
