"""BERT's masked-language-model objective on an encoder, over packed single documents."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from llm_jax import objectives
from llm_jax.tasks.base import Packing, Task


def frame(ids: np.ndarray, cls_id: int, sep_id: int) -> dict[str, np.ndarray]:
  """One document as BERT reads it: ``[CLS] doc [SEP]`` (the loss masks it later)."""
  return {'inputs': np.concatenate([[cls_id], ids, [sep_id]]).astype(np.int32)}


def packed_batch(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Packed encoder rows: each document attends only to itself (segment 0 is padding)."""
  return {'inputs': rows['inputs'], 'segment_ids': rows['inputs_segment_ids'],
          'positions': rows['inputs_positions']}


@dataclasses.dataclass(frozen=True)
class MaskedLM(Task):
  name: str = 'masked_lm'
  model_kinds: tuple[str, ...] = ('encoder',)
  needs: tuple[str, ...] = ('cls', 'sep', 'mask')

  def loss(self, model, params, batch, rng, train, *, vocab_size: int, mask_id: int,
           special_ids: tuple[int, ...]):
    """``batch['inputs']`` are clean token rows ([CLS] ... [SEP], padding); ``segment_ids``
    (0 on padding), ``token_types``, ``positions`` and ``word_starts`` (whole-word masking)
    are optional. Masking is redrawn every step. The head runs at the masked positions
    only, at most ``prediction_cap(length)`` of them per row."""
    mask_rng, dropout_rng = jax.random.split(rng)
    tokens = batch['inputs']
    inputs, weights = objectives.mask_tokens(mask_rng, tokens, vocab_size=vocab_size,
                                             mask_id=mask_id, special_ids=special_ids,
                                             word_starts=batch.get('word_starts'))
    inputs, predict_at, weights = objectives.cap_predictions(
        tokens, inputs, weights, objectives.prediction_cap(tokens.shape[1]))
    logits = model.apply({'params': params}, inputs, batch.get('positions'),
                         batch.get('segment_ids'), token_types=batch.get('token_types'),
                         deterministic=not train, rngs={'dropout': dropout_rng},
                         predict_at=predict_at)
    return objectives.masked_lm(logits, jnp.take_along_axis(tokens, predict_at, axis=1),
                                weights)

  def token_ids(self, vocab_size, special):
    return {'vocab_size': vocab_size, 'mask_id': special['mask'],
            'special_ids': tuple(sorted(set(special.values())))}

  def packing(self, special, seq_len, cross_document):
    del cross_document  # each document is its own row's segment
    return Packing(functools.partial(frame, cls_id=special['cls'], sep_id=special['sep']),
                   {'inputs': seq_len}, packed_batch)


TASK = MaskedLM()
