"""Autoregressive sampling: greedy, temperature, top-k and top-p, with a KV cache.

A batch of prompts of any lengths is prefilled in one call and each new token then costs one
cached step inside a jitted ``while_loop``, each row at its own position, until every row has
drawn a stop token or the budget is spent. Past the model's context the window slides
(nanoGPT's behaviour), and since learned positions shift with the window, those tokens are
computed without the cache. New token ``i`` is always drawn with ``fold_in(rng, i)``, so cached
and uncached sampling agree.
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


def _draw(logits: jax.Array, rng: jax.Array, step: jax.Array, done: jax.Array,
          stop_ids: tuple[int, ...], sampler: tuple) -> tuple[jax.Array, jax.Array]:
  """New token ``step`` of every row (drawn with ``fold_in(rng, step)``), the pad id 0 in
  rows already stopped; and which rows have stopped once it is taken."""
  token = jnp.where(done, 0, sample_logits(logits, jax.random.fold_in(rng, step), *sampler))
  return token, done | jnp.isin(token, jnp.asarray(stop_ids or (-1,), jnp.int32))


@functools.partial(jax.jit, static_argnames=('model', 'n_new', 'sampler', 'stop_ids'))
def _cached(params, prompt, lengths, rng, *, model: nn.Module, n_new: int, sampler: tuple,
            stop_ids: tuple[int, ...]):
  """``n_new`` tokens after each row's ``prompt[r, :lengths[r]]`` (right-padded), and which
  rows stopped. The batch prefills in one call; then each row writes its next token at its
  own position, so a row's tokens never depend on the others' lengths."""
  batch, prompt_len = prompt.shape
  shapes = jax.eval_shape(lambda: model.init(
      jax.random.key(0), jnp.zeros((batch, prompt_len + n_new), jnp.int32), decode=True))
  cache = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes['cache'])

  def step(tokens, positions, cache):
    logits, updated = model.apply({'params': params, 'cache': cache}, tokens, positions,
                                  decode=True, mutable=['cache'])
    return logits, updated['cache']

  logits, cache = step(prompt, jnp.broadcast_to(jnp.arange(prompt_len), prompt.shape), cache)
  last = jnp.take_along_axis(logits, (lengths - 1)[:, None, None], axis=1)[:, 0]
  first, done = _draw(last, rng, 0, jnp.zeros(batch, bool), stop_ids, sampler)
  out = jnp.zeros((batch, n_new), jnp.int32).at[:, 0].set(first)

  def body(carry):
    i, out, done, cache = carry
    previous = jax.lax.dynamic_slice_in_dim(out, i - 1, 1, axis=1)
    logits, cache = step(previous, (lengths + i - 1)[:, None], cache)
    token, done = _draw(logits[:, -1], rng, i, done, stop_ids, sampler)
    return i + 1, out.at[:, i].set(token), done, cache

  def more(carry):
    i, _, done, _ = carry
    return (i < n_new) & ~done.all()

  _, out, done, _ = jax.lax.while_loop(more, body, (1, out, done, cache))
  return out, done


@functools.partial(jax.jit, static_argnames=('model', 'sampler', 'stop_ids'))
def _uncached(params, window, lengths, done, rng, step, *, model: nn.Module, sampler: tuple,
              stop_ids: tuple[int, ...]):
  """The next token after each row's ``window[r, :lengths[r]]``; the rest of the fixed-size
  window is padding, which causal attention keeps from the positions that matter."""
  logits = model.apply({'params': params}, window)
  last = jnp.take_along_axis(logits, (lengths - 1)[:, None, None], axis=1)[:, 0]
  return _draw(last, rng, step, done, stop_ids, sampler)


def complete(model: nn.Module, params, prompts: list[np.ndarray], max_new_tokens: int,
             rng: jax.Array, *, stop_ids: tuple[int, ...] = (), temperature: float = 1.0,
             top_k: int = 0, top_p: float = 1.0, use_cache: bool = True) -> list[np.ndarray]:
  """Up to ``max_new_tokens`` new tokens for each prompt (of any lengths, one batch), each row
  cut before the first of ``stop_ids`` it draws (EOS, a chat turn's end).

  Greedy rows equal what each prompt gives alone. Within the model's context every token
  costs one cached step; past it, the window slides (nanoGPT's behaviour) and, since learned
  positions shift with the window, those tokens are computed without the cache.
  """
  if not len(prompts) or any(len(p) == 0 for p in prompts):
    raise UsageError('give at least one prompt, each of at least one token')
  sampler = (float(temperature), int(top_k), float(top_p))
  stop_ids = tuple(sorted({int(i) for i in stop_ids}))
  context = model.cfg.max_len
  rows = [np.asarray(p, np.int32)[-context:] if len(p) > context else np.asarray(p, np.int32)
          for p in prompts]
  lengths = np.array([len(r) for r in rows], np.int32)
  longest = int(lengths.max())
  n_cached = min(max_new_tokens, context - longest) if use_cache else 0
  new = np.zeros((len(rows), 0), np.int32)
  done = np.zeros(len(rows), bool)
  if n_cached > 0:
    padded = np.zeros((len(rows), longest), np.int32)
    for r, row in enumerate(rows):
      padded[r, :len(row)] = row
    new, done = _cached(params, padded, lengths, rng, model=model, n_new=n_cached,
                        sampler=sampler, stop_ids=stop_ids)
    new, done = np.asarray(new), np.asarray(done)
  sequences = [np.concatenate([p, n]) for p, n in zip(prompts, new)]
  for step in range(max(n_cached, 0), max_new_tokens):
    if done.all():
      break
    window = np.zeros((len(rows), context), np.int32)
    ends = np.zeros(len(rows), np.int32)
    for r, seq in enumerate(sequences):
      tail = seq[-context:]
      window[r, :len(tail)], ends[r] = tail, len(tail)
    token, now_done = _uncached(params, window, ends, done, rng, step, model=model,
                                sampler=sampler, stop_ids=stop_ids)
    token = np.asarray(token)
    sequences = [np.append(seq, t) for seq, t in zip(sequences, token)]
    done = np.asarray(now_done)
  out = []
  for prompt, seq in zip(prompts, sequences):
    tokens = seq[len(prompt):]
    stops = np.flatnonzero(np.isin(tokens, stop_ids)) if stop_ids else []
    out.append(tokens[:stops[0]] if len(stops) else tokens)
  return out


@functools.partial(jax.jit, static_argnames=('model', 'total'))
def _prefill(params, prompt, *, model: nn.Module, total: int):
  """One prompt's last logits and its cache, sized for ``total`` tokens."""
  shapes = jax.eval_shape(lambda: model.init(
      jax.random.key(0), jnp.zeros((prompt.shape[0], total), jnp.int32), decode=True))
  cache = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes['cache'])
  positions = jnp.broadcast_to(jnp.arange(prompt.shape[1]), prompt.shape)
  logits, updated = model.apply({'params': params, 'cache': cache}, prompt, positions,
                                decode=True, mutable=['cache'])
  return logits[:, -1], updated['cache']


@functools.partial(jax.jit, static_argnames=('model',), donate_argnames=('cache',))
def _extend(params, token, position, cache, *, model: nn.Module):
  logits, updated = model.apply({'params': params, 'cache': cache}, token[:, None],
                                position[:, None], decode=True, mutable=['cache'])
  return logits[:, -1], updated['cache']


_sample = jax.jit(sample_logits, static_argnames=('temperature', 'top_k', 'top_p'))


def stream(model: nn.Module, params, prompt: np.ndarray, max_new_tokens: int, rng: jax.Array,
           *, stop_ids: tuple[int, ...] = (), temperature: float = 1.0, top_k: int = 0,
           top_p: float = 1.0):
  """One prompt's new tokens one at a time, as they are drawn (for a terminal), until a stop
  token (not yielded), the budget or the model's context. Token ``i`` is drawn with
  ``fold_in(rng, i)``, as ``complete`` draws it, so the two agree."""
  prompt = np.asarray(prompt, np.int32)[None]
  n = min(max_new_tokens, model.cfg.max_len - prompt.shape[1])
  if n <= 0:
    return
  logits, cache = _prefill(params, prompt, model=model, total=prompt.shape[1] + n)
  for i in range(n):
    token = _sample(logits, jax.random.fold_in(rng, i), temperature=float(temperature),
                    top_k=int(top_k), top_p=float(top_p))
    value = int(token[0])
    if value in stop_ids:
      return
    yield value
    if i + 1 < n:
      logits, cache = _extend(params, token, jnp.array([prompt.shape[1] + i]), cache,
                              model=model)


def generate(model: nn.Module, params, prompt: np.ndarray, max_new_tokens: int, rng: jax.Array,
             *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
             use_cache: bool = True) -> np.ndarray:
  """Extends each row of ``prompt[batch, length]`` by exactly ``max_new_tokens`` tokens (no
  stop tokens: the fixed-shape case benchmarks and samplers of a base model use)."""
  if prompt.ndim != 2 or prompt.shape[1] == 0:
    raise UsageError('the prompt must be a [batch, length] array with at least one token')
  prompt = np.asarray(prompt, np.int32)
  new = complete(model, params, list(prompt), max_new_tokens, rng, temperature=temperature,
                 top_k=top_k, top_p=top_p, use_cache=use_cache)
  return np.concatenate([prompt, np.stack(new)], axis=1)


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
