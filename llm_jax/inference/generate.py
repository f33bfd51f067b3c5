"""Autoregressive sampling: greedy, temperature, top-k and top-p, with a KV cache.

The prompt is prefilled in one call and each new token then costs one cached step inside a
jitted ``fori_loop``. Past the model's context the window slides (nanoGPT's behaviour), and
since learned positions shift with the window, those tokens are computed without the cache.
Token ``i`` is always drawn with ``fold_in(rng, i)``, so cached and uncached sampling agree.
Encoder-decoders (``generate_seq2seq``) encode once and decode from a start token; the first
decode step caches the cross-attention keys and values, which later steps reuse.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from llm_jax.errors import UsageError


def sample_logits(logits: jax.Array, rng: jax.Array, temperature: float, top_k: int,
                  top_p: float) -> jax.Array:
  """Draws one token per row of ``logits[batch, vocab]``; temperature 0 is greedy."""
  if temperature == 0.0:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  logits = logits.astype(jnp.float32) / temperature
  if top_k:
    kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
    logits = jnp.where(logits < kth, -jnp.inf, logits)
  if top_p < 1.0:
    sorted_logits = jnp.sort(logits, axis=-1)[..., ::-1]
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    # keep the smallest prefix whose mass reaches top_p (always at least the best token)
    mass_before = jnp.cumsum(probs, axis=-1) - probs
    kept = jnp.where(mass_before < top_p, sorted_logits, jnp.inf)
    logits = jnp.where(logits < kept.min(axis=-1, keepdims=True), -jnp.inf, logits)
  return jax.random.categorical(rng, logits).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=('model', 'n_new', 'sampler'))
def _cached(params, prompt, rng, *, model: nn.Module, n_new: int, sampler: tuple):
  batch, prompt_len = prompt.shape
  shapes = jax.eval_shape(lambda: model.init(
      jax.random.key(0), jnp.zeros((batch, prompt_len + n_new), jnp.int32), decode=True))
  cache = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes['cache'])

  def step(tokens, positions, cache):
    logits, updated = model.apply({'params': params, 'cache': cache}, tokens, positions,
                                  decode=True, mutable=['cache'])
    return logits[:, -1], updated['cache']

  positions = jnp.broadcast_to(jnp.arange(prompt_len), prompt.shape)
  logits, cache = step(prompt, positions, cache)
  out = jnp.zeros((batch, n_new), jnp.int32)
  out = out.at[:, 0].set(sample_logits(logits, jax.random.fold_in(rng, prompt_len), *sampler))

  def body(i, carry):
    out, cache = carry
    position = prompt_len + i - 1
    previous = jax.lax.dynamic_slice_in_dim(out, i - 1, 1, axis=1)
    logits, cache = step(previous, jnp.full((batch, 1), position), cache)
    token = sample_logits(logits, jax.random.fold_in(rng, position + 1), *sampler)
    return out.at[:, i].set(token), cache

  return jax.lax.fori_loop(1, n_new, body, (out, cache))[0]


@functools.partial(jax.jit, static_argnames=('model', 'sampler'))
def _uncached(params, window, length, rng, *, model: nn.Module, sampler: tuple):
  """Next token after ``window[:, :length]``; the rest of the fixed-size window is padding,
  which causal attention keeps from touching the positions that matter."""
  logits = model.apply({'params': params}, window)
  last = jax.lax.dynamic_index_in_dim(logits, length - 1, axis=1, keepdims=False)
  return sample_logits(last, rng, *sampler)


def generate(model: nn.Module, params, prompt: np.ndarray, max_new_tokens: int, rng: jax.Array,
             *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
             use_cache: bool = True) -> np.ndarray:
  """Extends each row of ``prompt[batch, length]`` by ``max_new_tokens`` tokens."""
  if prompt.ndim != 2 or prompt.shape[1] == 0:
    raise UsageError('the prompt must be a [batch, length] array with at least one token')
  sampler = (float(temperature), int(top_k), float(top_p))
  context = model.cfg.max_len
  tokens = np.asarray(prompt, np.int32)
  n_cached = min(max_new_tokens, context - tokens.shape[1]) if use_cache else 0
  if n_cached > 0:
    new = _cached(params, tokens, rng, model=model, n_new=n_cached, sampler=sampler)
    tokens = np.concatenate([tokens, np.asarray(new)], axis=1)
  for _ in range(max_new_tokens - max(n_cached, 0)):
    window = tokens[:, -context:]
    length = window.shape[1]
    padded = np.zeros((tokens.shape[0], context), np.int32)
    padded[:, :length] = window
    token = _uncached(params, padded, length, jax.random.fold_in(rng, tokens.shape[1]),
                      model=model, sampler=sampler)
    tokens = np.concatenate([tokens, np.asarray(token)[:, None]], axis=1)
  return tokens


@functools.partial(jax.jit, static_argnames=('model', 'n_new', 'sampler', 'start_id'))
def _seq2seq_cached(params, inputs, input_segments, rng, *, model: nn.Module, n_new: int,
                    sampler: tuple, start_id: int):
  batch = inputs.shape[0]
  variables = {'params': params}
  encoded = model.apply(variables, inputs, None, input_segments, method='encode')
  shapes = jax.eval_shape(lambda: model.init(
      jax.random.key(0), inputs, jnp.zeros((batch, n_new), jnp.int32), input_segments,
      decode=True))
  cache = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes['cache'])

  def step(tokens, position, encoded, cache):
    logits, updated = model.apply(
        {**variables, 'cache': cache}, tokens, encoded, input_segments,
        jnp.full((batch, 1), position), decode=True, mutable=['cache'], method='decode')
    return logits[:, -1], updated['cache']

  # the first step stores the cross-attention keys/values of ``encoded``; later ones reuse them
  logits, cache = step(jnp.full((batch, 1), start_id, jnp.int32), 0, encoded, cache)
  out = jnp.zeros((batch, n_new), jnp.int32)
  out = out.at[:, 0].set(sample_logits(logits, jax.random.fold_in(rng, 0), *sampler))

  def body(i, carry):
    out, cache = carry
    previous = jax.lax.dynamic_slice_in_dim(out, i - 1, 1, axis=1)
    logits, cache = step(previous, i, None, cache)
    return out.at[:, i].set(sample_logits(logits, jax.random.fold_in(rng, i), *sampler)), cache

  return jax.lax.fori_loop(1, n_new, body, (out, cache))[0]


@functools.partial(jax.jit, static_argnames=('model', 'sampler'))
def _seq2seq_uncached(params, inputs, input_segments, decoder_tokens, length, rng, *,
                      model: nn.Module, sampler: tuple):
  """Next token after ``decoder_tokens[:, :length]`` (the rest is causally masked padding),
  running encoder and decoder in full."""
  logits = model.apply({'params': params}, inputs, decoder_tokens, input_segments)
  last = jax.lax.dynamic_index_in_dim(logits, length - 1, axis=1, keepdims=False)
  return sample_logits(last, rng, *sampler)


def generate_seq2seq(model: nn.Module, params, inputs: np.ndarray, max_new_tokens: int,
                     rng: jax.Array, *, input_segment_ids: np.ndarray | None = None,
                     start_id: int = 0, temperature: float = 1.0, top_k: int = 0,
                     top_p: float = 1.0, use_cache: bool = True) -> np.ndarray:
  """``max_new_tokens`` decoder tokens for each row of ``inputs[batch, length]``.

  An encoder-decoder (T5) starts decoding from ``start_id`` (T5: the pad id, 0);
  ``input_segment_ids`` (0 on padding) mask padded inputs. Cached, the encoder runs once and
  each token costs one decoder step; token ``i`` is always drawn with ``fold_in(rng, i)``,
  so cached and uncached decoding agree.
  """
  if inputs.ndim != 2 or inputs.shape[1] == 0 or max_new_tokens <= 0:
    raise UsageError('the inputs must be a [batch, length] array with at least one token, '
                     'and max_new_tokens positive')
  sampler = (float(temperature), int(top_k), float(top_p))
  inputs = np.asarray(inputs, np.int32)
  if use_cache:
    return np.asarray(_seq2seq_cached(params, inputs, input_segment_ids, rng, model=model,
                                      n_new=max_new_tokens, sampler=sampler,
                                      start_id=start_id))
  tokens = np.zeros((inputs.shape[0], max_new_tokens + 1), np.int32)
  tokens[:, 0] = start_id
  for i in range(max_new_tokens):
    token = _seq2seq_uncached(params, inputs, input_segment_ids, tokens[:, :-1], i + 1,
                              jax.random.fold_in(rng, i), model=model, sampler=sampler)
    tokens[:, i + 1] = np.asarray(token)
  return tokens[:, 1:]
