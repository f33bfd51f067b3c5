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


def corrupt(rng: jax.Array, batch: dict[str, jax.Array], vocab_size: int, mask_id: int,
            special_ids: tuple[int, ...], rates: tuple[float, float, float]):
  """BERT's masking of ``batch['inputs']``, cut to the head's cap: ``(inputs, predict_at,
  weights)`` (``objectives.mask_tokens`` and ``cap_predictions``)."""
  rate, mask_fraction, random_fraction = rates
  tokens = batch['inputs']
  inputs, weights = objectives.mask_tokens(rng, tokens, vocab_size=vocab_size, mask_id=mask_id,
                                           special_ids=special_ids, rate=rate,
                                           mask_fraction=mask_fraction,
                                           random_fraction=random_fraction,
                                           word_starts=batch.get('word_starts'))
  return objectives.cap_predictions(tokens, inputs, weights,
                                    objectives.prediction_cap(tokens.shape[1], rate))


def rate_errors(mlm) -> list[str]:
  out = []
  if not 0.0 < mlm.rate < 1.0:
    out.append(f'mlm.rate={mlm.rate} must be in (0, 1)')
  if min(mlm.mask_fraction, mlm.random_fraction) < 0 or \
      mlm.mask_fraction + mlm.random_fraction > 1.0:
    out.append(f'mlm.mask_fraction={mlm.mask_fraction} and mlm.random_fraction='
               f'{mlm.random_fraction} must be >= 0 and add up to at most 1 (the rest keep '
               'their token)')
  if not 0.0 <= mlm.random_next <= 1.0:
    out.append(f'mlm.random_next={mlm.random_next} must be in [0, 1]')
  return out


@dataclasses.dataclass(frozen=True)
class MaskedLM(Task):
  name: str = 'masked_lm'
  model_kinds: tuple[str, ...] = ('encoder',)
  needs: tuple[str, ...] = ('cls', 'sep', 'mask')

  def loss(self, model, params, batch, rng, train, *, vocab_size: int, mask_id: int,
           special_ids: tuple[int, ...], rates: tuple[float, float, float] = (0.15, 0.8, 0.1)):
    """``batch['inputs']`` are clean token rows ([CLS] ... [SEP], padding); ``segment_ids``
    (0 on padding), ``token_types``, ``positions`` and ``word_starts`` (whole-word masking)
    are optional. Masking is redrawn every step. The head runs at the masked positions
    only, at most ``prediction_cap(length)`` of them per row. ``rates``: the selected
    fraction and the [MASK] and random shares of it (``mlm.rate``, ``mask_fraction``,
    ``random_fraction``)."""
    mask_rng, dropout_rng = jax.random.split(rng)
    tokens = batch['inputs']
    inputs, predict_at, weights = corrupt(mask_rng, batch, vocab_size, mask_id, special_ids,
                                          rates)
    logits = model.apply({'params': params}, inputs, batch.get('positions'),
                         batch.get('segment_ids'), token_types=batch.get('token_types'),
                         deterministic=not train, rngs={'dropout': dropout_rng},
                         predict_at=predict_at)
    return objectives.masked_lm(logits, jnp.take_along_axis(tokens, predict_at, axis=1),
                                weights)

  def token_ids(self, vocab_size, special, config):
    m = config.mlm
    return {'vocab_size': vocab_size, 'mask_id': special['mask'],
            'special_ids': tuple(sorted(set(special.values()))),
            'rates': (m.rate, m.mask_fraction, m.random_fraction)}

  def packing(self, special, config):  # each document is its own row's segment
    return Packing(functools.partial(frame, cls_id=special['cls'], sep_id=special['sep']),
                   {'inputs': config.train.seq_len}, packed_batch)

  def errors(self, config):
    return super().errors(config) + rate_errors(config.mlm)


TASK = MaskedLM()
