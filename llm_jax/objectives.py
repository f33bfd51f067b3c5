"""Loss functions: pure, jit-able, taking and returning arrays only.

Each returns ``(loss, metrics)`` where ``metrics`` holds *sums* and a token count, so that
the training loop and evaluation can add them across steps and batches and divide once:
a mean of per-batch means would weigh a padded remainder batch wrongly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax


def causal_lm(logits: jax.Array, targets: jax.Array,
              loss_mask: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Next-token cross-entropy, in float32, averaged over the positions ``loss_mask`` keeps.

  Args:
    logits: ``[batch, length, vocab]`` predictions for ``targets``.
    targets: ``[batch, length]`` the token each position must predict.
    loss_mask: ``[batch, length]``, 1 where a position counts (0 on padding); all ones if None.

  Returns:
    The mean loss, and metrics ``nll_sum``, ``correct_sum`` and ``tokens`` (sums over the batch).
  """
  if loss_mask is None:
    loss_mask = jnp.ones(targets.shape, jnp.float32)
  loss_mask = loss_mask.astype(jnp.float32)
  nll = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)
  tokens = loss_mask.sum()
  nll_sum = (nll * loss_mask).sum()
  correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
  metrics = {'nll_sum': nll_sum, 'correct_sum': (correct * loss_mask).sum(), 'tokens': tokens}
  return nll_sum / jnp.maximum(tokens, 1.0), metrics


def classification(logits: jax.Array, labels: jax.Array,
                   weights: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Softmax cross-entropy over ``logits[batch, classes]``, or with one output the squared
  error of a regression, in float32, averaged over the examples ``weights`` keeps.

  Args:
    logits: ``[batch, num_labels]``; ``num_labels == 1`` is regression.
    labels: ``[batch]`` class ids, or target values for regression.
    weights: ``[batch]``, 0 on the padding rows of a last partial batch; all ones if None.
      A padding row's label is ignored, so it may hold anything (-1, NaN).

  Returns:
    The mean loss, and metrics ``nll_sum`` (the summed loss), ``correct_sum`` (0 for
    regression) and ``tokens`` (the examples counted), as ``causal_lm`` sums them.
  """
  if weights is None:
    weights = jnp.ones(labels.shape, jnp.float32)
  weights = weights.astype(jnp.float32)
  # a NaN label on a padding row would poison the gradient even with weight 0
  labels = jnp.where(weights > 0, labels, jnp.zeros_like(labels))
  logits = logits.astype(jnp.float32)
  if logits.shape[-1] == 1:
    loss = jnp.square(logits[:, 0] - labels.astype(jnp.float32))
    correct = jnp.zeros_like(loss)
  else:
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
  examples = weights.sum()
  nll_sum = (loss * weights).sum()
  metrics = {'nll_sum': nll_sum, 'correct_sum': (correct * weights).sum(), 'tokens': examples}
  return nll_sum / jnp.maximum(examples, 1.0), metrics


def predictions(logits: jax.Array) -> jax.Array:
  """What a classifier predicts: class probabilities ``[batch, classes]`` (the scores
  ``metrics.Classification`` ranks), or with one output the regression values ``[batch]``."""
  logits = logits.astype(jnp.float32)
  if logits.shape[-1] == 1:
    return logits[:, 0]
  return jax.nn.softmax(logits, axis=-1)


def mask_tokens(rng: jax.Array, tokens: jax.Array, *, vocab_size: int, mask_id: int,
                special_ids: Sequence[int], rate: float = 0.15, mask_fraction: float = 0.8,
                random_fraction: float = 0.1,
                word_starts: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
  """BERT's masked-LM corruption: returns ``(inputs, weights)``.

  Each token that is not special (``special_ids`` includes padding) is selected with
  probability ``rate``; a selected token becomes ``mask_id`` with probability
  ``mask_fraction``, a uniformly random id with probability ``random_fraction``, and stays as
  it is otherwise, so the model cannot trust unmasked positions either. ``weights`` is 1 on
  the selected positions, the only ones the loss counts. With ``word_starts`` (True on the
  first token of every word; special tokens are words of their own) whole words are
  selected: every token takes its word's draw.
  """
  select_rng, action_rng, random_rng = jax.random.split(rng, 3)
  maskable = ~jnp.isin(tokens, jnp.asarray(special_ids, tokens.dtype))
  draw = jax.random.uniform(select_rng, tokens.shape)
  if word_starts is not None:
    index = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
    start = jax.lax.cummax(jnp.where(word_starts, index, 0), axis=1)
    draw = jnp.take_along_axis(draw, start, axis=1)
  selected = (draw < rate) & maskable
  action = jax.random.uniform(action_rng, tokens.shape)
  random_tokens = jax.random.randint(random_rng, tokens.shape, 0, vocab_size, tokens.dtype)
  inputs = jnp.where(selected & (action < mask_fraction), mask_id, tokens)
  replace = selected & (action >= mask_fraction) & (action < mask_fraction + random_fraction)
  inputs = jnp.where(replace, random_tokens, inputs)
  return inputs, selected.astype(jnp.float32)


def prediction_cap(length: int, rate: float = 0.15) -> int:
  """How many masked positions per row the head predicts: the mean plus four standard
  deviations of the selected count, which a row exceeds a few times in 100,000 (BERT's
  ``max_predictions_per_seq`` is 20 for rows of 128; this gives 36)."""
  return min(length, math.ceil(rate * length + 4 * math.sqrt(rate * (1 - rate) * length)))


def cap_predictions(tokens: jax.Array, inputs: jax.Array, weights: jax.Array,
                    cap: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """``mask_tokens``'s selection cut to the first ``cap`` positions of each row, as BERT's
  ``max_predictions_per_seq`` does: returns ``(inputs, positions[batch, cap], weights[batch,
  cap])``. A selected position past the cap gets its token back, so what the model sees
  and what the loss counts stay the same set."""
  selected = weights > 0
  kept = selected & (jnp.cumsum(selected, axis=1) <= cap)
  inputs = jnp.where(selected & ~kept, tokens, inputs)
  positions = jnp.argsort(jnp.where(kept, 0, 1), axis=1, stable=True)[:, :cap]
  return inputs, positions, jnp.take_along_axis(kept, positions, axis=1).astype(jnp.float32)


def masked_lm(logits: jax.Array, tokens: jax.Array,
              weights: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The original ``tokens`` predicted where ``mask_tokens`` selected them (``weights``), and
  only there: the same cross-entropy and summed metrics as ``causal_lm``."""
  return causal_lm(logits, tokens, weights)


def _noise_counts(length, noise_density: float, mean_noise_span_length: float, xp=jnp):
  """t5x's counts for rows of ``length`` tokens, in float32 as t5x computes them: (noise
  tokens, noise spans), each at least one, leaving at least one token of non-noise.
  ``xp=np`` gives the static counts of a static length (inside jit too)."""
  num_noise = xp.round(xp.asarray(length, xp.float32) * xp.float32(noise_density))
  num_noise = xp.clip(num_noise, 1, length - 1).astype(xp.int32)
  num_spans = xp.maximum(xp.round(num_noise / xp.float32(mean_noise_span_length)), 1)
  return num_noise, num_spans.astype(xp.int32)


def span_corruption_lengths(tokens_length: int, noise_density: float = 0.15,
                            mean_noise_span_length: float = 3.0) -> tuple[int, int]:
  """Static (inputs, targets) lengths, EOS included, of ``span_corruption`` over rows of
  ``tokens_length`` tokens; shorter rows give no longer outputs."""
  noise, spans = (int(n) for n in _noise_counts(max(tokens_length, 2), noise_density,
                                                 mean_noise_span_length, np))
  return tokens_length - noise + spans + 1, noise + spans + 1


def span_corruption_tokens_length(inputs_length: int, noise_density: float = 0.15,
                                  mean_noise_span_length: float = 3.0) -> int:
  """The longest row whose corrupted inputs fit ``inputs_length`` (t5x's
  ``random_spans_helper``): 568 raw tokens for T5's 512 inputs (and 114 targets)."""
  n = inputs_length - 1
  while span_corruption_lengths(n + 1, noise_density, mean_noise_span_length)[0] <= inputs_length:
    n += 1
  return n


def _random_segmentation(rng: jax.Array, num_items: jax.Array, num_segments: jax.Array,
                         size: int) -> jax.Array:
  """Lengths of a uniformly random split of ``num_items`` items into ``num_segments``
  non-empty segments, zero-padded to ``size`` entries (t5x: a random subset of the gaps
  between items starts the segments)."""
  gaps = jnp.arange(size - 1)
  scores = jnp.where(gaps < num_items - 1, jax.random.uniform(rng, (size - 1,)), 2.0)
  starts = jnp.argsort(jnp.argsort(scores)) < num_segments - 1
  segment = jnp.cumsum(jnp.concatenate([jnp.ones(1, jnp.int32), starts.astype(jnp.int32)])) - 1
  segment = jnp.where(jnp.arange(size) < num_items, segment, size)  # size: dropped
  return jnp.zeros(size, jnp.int32).at[segment].add(1, mode='drop')


def random_spans_noise_mask(rng: jax.Array, lengths: jax.Array, size: int,
                            noise_density: float = 0.15,
                            mean_noise_span_length: float = 3.0) -> jax.Array:
  """t5x's ``random_spans_noise_mask`` for each row: ``[batch, size]``, True on noise.

  A row of ``length`` tokens gets ``round(length * noise_density)`` noise tokens in
  ``round(noise / mean_noise_span_length)`` spans; noise and non-noise spans alternate,
  starting with non-noise, their lengths random. Positions past ``length`` are False.
  """
  def one_row(rng, length):
    n = jnp.maximum(length, 2)
    num_noise, num_spans = _noise_counts(n, noise_density, mean_noise_span_length)
    noise_rng, keep_rng = jax.random.split(rng)
    noise = _random_segmentation(noise_rng, num_noise, num_spans, size)
    keep = _random_segmentation(keep_rng, n - num_noise, num_spans, size)
    span_starts = jnp.cumsum(jnp.stack([keep, noise], axis=1).reshape(-1))[:-1]
    # spans past the last hold no tokens; their starts fall at n and beyond, cut off below
    first_of_span = jnp.zeros(size, jnp.int32).at[span_starts].add(1, mode='drop')
    is_noise = jnp.cumsum(first_of_span) % 2 == 1
    return is_noise & (jnp.arange(size) < length)

  rngs = jax.random.split(rng, lengths.shape[0])
  return jax.vmap(one_row)(rngs, lengths)


def spans_to_sentinels(tokens: jax.Array, spans: jax.Array, lengths: jax.Array, *,
                       vocab_size: int, eos_id: int, pad_id: int, out_length: int) -> jax.Array:
  """t5x's ``noise_span_to_unique_sentinel`` then EOS: each span (``spans`` True) becomes one
  sentinel, ``vocab_size - 1`` for the first and counting down, the rest of the row is kept;
  EOS follows (rows of no tokens stay all padding), padding fills ``out_length``."""
  valid = jnp.arange(tokens.shape[1]) < lengths[:, None]
  spans = spans & valid
  previous = jnp.pad(spans[:, :-1], ((0, 0), (1, 0)))
  first = spans & ~previous
  sentinels = vocab_size - jnp.cumsum(first, axis=1)
  out = jnp.where(first, sentinels, tokens).astype(tokens.dtype)
  keep = valid & ~(spans & previous)
  index = jnp.where(keep, jnp.cumsum(keep, axis=1) - 1, out_length)
  rows = jnp.arange(tokens.shape[0])[:, None]
  result = jnp.full((tokens.shape[0], out_length), pad_id, tokens.dtype)
  result = result.at[rows, index].set(out, mode='drop')
  count = keep.sum(axis=1)
  eos = jnp.where(lengths > 0, eos_id, pad_id).astype(tokens.dtype)
  return result.at[jnp.arange(tokens.shape[0]), count].set(eos, mode='drop')


def span_corruption(rng: jax.Array, tokens: jax.Array, *, vocab_size: int, eos_id: int,
                    pad_id: int = 0, noise_density: float = 0.15,
                    mean_noise_span_length: float = 3.0) -> tuple[jax.Array, jax.Array]:
  """T5's span corruption, as t5x builds it: returns ``(inputs, targets)``.

  ``tokens`` are raw rows (no EOS), right-padded with ``pad_id``. Random spans (see
  ``random_spans_noise_mask``) are cut out of the inputs, each leaving one sentinel; the
  targets are the cut spans, each after its sentinel. With text ``a b c d e f`` and noise
  ``c d`` and ``f``: inputs ``a b <s0> e <s1> EOS``, targets ``<s0> c d <s1> f EOS``, with
  ``<s0> = vocab_size - 1`` (the tokenizer's size: t5x's ``sentinel_id``), ``<s1>`` one less.
  Output lengths are static, ``span_corruption_lengths(tokens.shape[1])``.
  """
  lengths = (tokens != pad_id).sum(axis=1)
  noise = random_spans_noise_mask(rng, lengths, tokens.shape[1], noise_density,
                                  mean_noise_span_length)
  inputs_length, targets_length = span_corruption_lengths(tokens.shape[1], noise_density,
                                                          mean_noise_span_length)
  ids = dict(vocab_size=vocab_size, eos_id=eos_id, pad_id=pad_id)
  inputs = spans_to_sentinels(tokens, noise, lengths, out_length=inputs_length, **ids)
  targets = spans_to_sentinels(tokens, ~noise, lengths, out_length=targets_length, **ids)
  return inputs, targets
