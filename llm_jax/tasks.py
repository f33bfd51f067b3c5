"""What a training step optimizes: a model's forward pass joined to an objective.

A task is ``loss(model, params, batch, rng, train) -> (loss, summed metrics)``. The training
loop calls one by the config's ``objective`` name and knows nothing else about models or
objectives; randomness an objective needs (dropout, masking) comes from ``rng``, so a resumed
run masks exactly as the uninterrupted one. Tasks that need token ids (the mask id, EOS) take
them as keyword arguments, which ``bind`` fills from a tokenizer's special-token map.
"""

from __future__ import annotations

import functools
from typing import Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from llm_jax import objectives
from llm_jax.errors import UsageError

Task = Callable[..., tuple[jax.Array, dict[str, jax.Array]]]


def causal_lm(model: nn.Module, params, batch: dict[str, jax.Array], rng: jax.Array,
              train: bool):
  """Next-token prediction; packed rows pass ``positions`` and ``segment_ids``."""
  logits = model.apply({'params': params}, batch['inputs'], batch.get('positions'),
                       batch.get('segment_ids'), deterministic=not train,
                       rngs={'dropout': rng})
  return objectives.causal_lm(logits, batch['targets'], batch.get('loss_mask'))


def masked_lm(model: nn.Module, params, batch: dict[str, jax.Array], rng: jax.Array,
              train: bool, *, vocab_size: int, mask_id: int, special_ids: Sequence[int]):
  """BERT's objective on an encoder: ``batch['inputs']`` are clean token rows ([CLS] ...
  [SEP], padding); ``segment_ids`` (0 on padding), ``token_types``, ``positions`` and
  ``word_starts`` (whole-word masking) are optional. Masking is redrawn every step. The head
  runs at the masked positions only, at most ``prediction_cap(length)`` of them per row."""
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
  return objectives.masked_lm(logits, jnp.take_along_axis(tokens, predict_at, axis=1), weights)


def span_corruption(model: nn.Module, params, batch: dict[str, jax.Array], rng: jax.Array,
                    train: bool, *, vocab_size: int, eos_id: int, pad_id: int):
  """T5's objective on an encoder-decoder: ``batch['inputs']`` are raw token rows (no EOS,
  right-padded with ``pad_id``; ``objectives.span_corruption_tokens_length`` gives the row
  length for a wanted input length). The decoder reads the targets shifted right behind
  ``pad_id``, T5's decoder start."""
  noise_rng, dropout_rng = jax.random.split(rng)
  inputs, targets = objectives.span_corruption(noise_rng, batch['inputs'],
                                               vocab_size=vocab_size, eos_id=eos_id,
                                               pad_id=pad_id)
  decoder_inputs = jnp.pad(targets[:, :-1], ((0, 0), (1, 0)), constant_values=pad_id)
  input_segments = (inputs != pad_id).astype(jnp.int32)
  target_segments = (targets != pad_id).astype(jnp.int32)
  logits = model.apply({'params': params}, inputs, decoder_inputs, input_segments,
                       target_segments, deterministic=not train, rngs={'dropout': dropout_rng})
  # the decoder's loss is next-token prediction of the targets, padding excluded
  return objectives.causal_lm(logits, targets, target_segments)


def classifier_logits(model: nn.Module, params, batch: dict[str, jax.Array],
                      rng: jax.Array | None = None, train: bool = False) -> jax.Array:
  """A ``SequenceClassifier``'s logits for ``batch['inputs']`` (``[batch, length]``) with its
  ``attention_mask`` (0 on padding); ``token_types`` and ``positions`` are optional. Eval and
  predict turn them into loss sums and probabilities from one forward pass."""
  return model.apply({'params': params}, batch['inputs'], batch.get('positions'),
                     batch['attention_mask'], token_types=batch.get('token_types'),
                     deterministic=not train, rngs={'dropout': rng} if train else {})


def classification(model: nn.Module, params, batch: dict[str, jax.Array], rng: jax.Array,
                   train: bool):
  """Sequence classification (or regression, one output): ``batch['labels']`` ``[batch]``,
  and ``example_mask`` (0 on the padding rows of a last partial batch) if any."""
  logits = classifier_logits(model, params, batch, rng, train)
  return objectives.classification(logits, batch['labels'], batch.get('example_mask'))


TASKS: dict[str, Task] = {'causal_lm': causal_lm, 'masked_lm': masked_lm,
                          'span_corruption': span_corruption,
                          'classification': classification}


def bind(name: str, vocab_size: int, special: Mapping[str, int]) -> Task:
  """``TASKS[name]`` with the token ids it needs, from a tokenizer's ``vocab_size`` and
  ``special`` map (names such as pad, eos, mask -> ids); call it as
  ``task(model, params, batch, rng, train)``."""
  needs = {'masked_lm': ('mask',), 'span_corruption': ('eos', 'pad')}.get(name, ())
  missing = [n for n in needs if n not in special]
  if missing:
    raise UsageError(f'objective {name!r} needs the tokenizer\'s {", ".join(missing)} token; '
                     f'it has {", ".join(sorted(special)) or "no special tokens"}')
  if name == 'masked_lm':
    return functools.partial(masked_lm, vocab_size=vocab_size, mask_id=special['mask'],
                             special_ids=tuple(sorted(set(special.values()))))
  if name == 'span_corruption':
    return functools.partial(span_corruption, vocab_size=vocab_size, eos_id=special['eos'],
                             pad_id=special['pad'])
  return TASKS[name]
