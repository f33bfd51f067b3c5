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


def _seq2seq_start(params, inputs, input_segments, batch: int, n_new: int, model: nn.Module):
  """The encoder's states of ``inputs`` and an empty decoder cache for ``batch`` rows."""
  encoded = model.apply({'params': params}, inputs, None, input_segments, method='encode')
  shapes = jax.eval_shape(lambda: model.init(
      jax.random.key(0), inputs, jnp.zeros((batch, n_new), jnp.int32), input_segments,
      decode=True))
  return encoded, jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes['cache'])


def _seq2seq_step(params, tokens, position, encoded, input_segments, cache, model: nn.Module):
  """One cached decoder step: the last logits and the cache. The first call (``encoded``
  given) stores the cross-attention keys and values; later ones pass None."""
  logits, updated = model.apply(
      {'params': params, 'cache': cache}, tokens, encoded, input_segments,
      jnp.full((tokens.shape[0], 1), position), decode=True, mutable=['cache'],
      method='decode')
  return logits[:, -1], updated['cache']


@functools.partial(jax.jit, static_argnames=('model', 'n_new', 'sampler', 'start_id',
                                             'stop_ids'))
def _seq2seq_cached(params, inputs, input_segments, rng, *, model: nn.Module, n_new: int,
                    sampler: tuple, start_id: int, stop_ids: tuple[int, ...]):
  batch = inputs.shape[0]
  encoded, cache = _seq2seq_start(params, inputs, input_segments, batch, n_new, model)
  start = jnp.full((batch, 1), start_id, jnp.int32)
  logits, cache = _seq2seq_step(params, start, 0, encoded, input_segments, cache, model)
  first, done = _draw(logits, rng, 0, jnp.zeros(batch, bool), stop_ids, sampler)
  out = jnp.zeros((batch, n_new), jnp.int32).at[:, 0].set(first)

  def body(carry):
    i, out, done, cache = carry
    previous = jax.lax.dynamic_slice_in_dim(out, i - 1, 1, axis=1)
    logits, cache = _seq2seq_step(params, previous, i, None, input_segments, cache, model)
    token, done = _draw(logits, rng, i, done, stop_ids, sampler)
    return i + 1, out.at[:, i].set(token), done, cache

  def more(carry):
    i, _, done, _ = carry
    return (i < n_new) & ~done.all()

  return jax.lax.while_loop(more, body, (1, out, done, cache))[1]


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
                     start_id: int = 0, stop_ids: tuple[int, ...] = (),
                     temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                     use_cache: bool = True) -> np.ndarray:
  """``max_new_tokens`` decoder tokens for each row of ``inputs[batch, length]``; a row that
  draws one of ``stop_ids`` (EOS) keeps it and is padded with 0 after it, and decoding ends
  when every row has stopped.

  An encoder-decoder (T5) starts decoding from ``start_id`` (T5: the pad id, 0);
  ``input_segment_ids`` (0 on padding) mask padded inputs. Cached, the encoder runs once and
  each token costs one decoder step; token ``i`` is always drawn with ``fold_in(rng, i)``,
  so cached and uncached decoding agree.
  """
  if inputs.ndim != 2 or inputs.shape[1] == 0 or max_new_tokens <= 0:
    raise UsageError('the inputs must be a [batch, length] array with at least one token, '
                     'and max_new_tokens positive')
  sampler = (float(temperature), int(top_k), float(top_p))
  stop_ids = tuple(sorted({int(i) for i in stop_ids}))
  inputs = np.asarray(inputs, np.int32)
  if use_cache:
    return np.asarray(_seq2seq_cached(params, inputs, input_segment_ids, rng, model=model,
                                      n_new=max_new_tokens, sampler=sampler,
                                      start_id=start_id, stop_ids=stop_ids))
  tokens = np.zeros((inputs.shape[0], max_new_tokens + 1), np.int32)
  tokens[:, 0] = start_id
  done = np.zeros(inputs.shape[0], bool)
  for i in range(max_new_tokens):
    if done.all():
      break
    token = np.asarray(_seq2seq_uncached(params, inputs, input_segment_ids, tokens[:, :-1],
                                         i + 1, jax.random.fold_in(rng, i), model=model,
                                         sampler=sampler))
    tokens[:, i + 1] = np.where(done, 0, token)
    done |= np.isin(token, stop_ids)
  return tokens[:, 1:]


@functools.partial(jax.jit, static_argnames=('model', 'n_new', 'beams', 'start_id', 'eos_id'))
def _seq2seq_beams(params, inputs, input_segments, length_penalty, *, model: nn.Module,
                   n_new: int, beams: int, start_id: int, eos_id: int):
  batch = inputs.shape[0]
  repeat = functools.partial(jnp.repeat, repeats=beams, axis=0)
  inputs = repeat(inputs)
  input_segments = None if input_segments is None else repeat(input_segments)
  # one slot more than tokens: the loop feeds its last token too
  encoded, cache = _seq2seq_start(params, inputs, input_segments, batch * beams, n_new + 1,
                                  model)
  # a scanned decoder stacks its layers' caches in front of the batch axis
  axis = 1 if model.cfg.scan_layers else 0

  def step(tokens, position, cache, encoded=None):
    logits, cache = _seq2seq_step(params, tokens[:, None], position, encoded, input_segments,
                                  cache, model)
    return jax.nn.log_softmax(logits.astype(jnp.float32)), cache

  def reorder(cache, rows):
    return jax.tree_util.tree_map(lambda x: jnp.take(x, rows, axis=axis), cache)

  # the first step stores the cross-attention keys/values; the loop's steps reuse them
  first, cache = step(jnp.full(batch * beams, start_id, jnp.int32), 0, cache, encoded)
  return beam_search(first, step, cache, reorder, batch, beams, n_new, eos_id, length_penalty)


def beam_search(first: jax.Array, step, state, reorder, batch: int, beams: int, n_new: int,
                eos_id: int, length_penalty: float = 1.0) -> jax.Array:
  """The best of ``beams`` hypotheses per row, ``[batch, n_new]`` (EOS kept, 0 after it).

  ``first`` are the log-probabilities ``[batch * beams, vocab]`` of the first token (every
  hypothesis of a row alike); ``step(tokens[batch * beams], position, state) -> (the next
  log-probabilities, state)`` feeds every hypothesis its last token (new token ``i`` sits at
  position ``i + 1``, behind the start); ``reorder(state, rows)`` gathers the state rows the
  surviving hypotheses came from. Hugging Face's beam search: of the
  ``2 * beams`` best extensions, those ending in EOS among the top ``beams`` are finished,
  scored ``sum of log-probabilities / length ** length_penalty`` (length counts EOS), and
  the best ``beams`` others live on. It stops when no live hypothesis can beat the worst
  finished one of every row (log-probabilities only fall), or after ``n_new`` tokens, when
  unfinished ones compete at that length. Width 1 without a length penalty is greedy
  decoding (a positive penalty lets a long unfinished hypothesis beat an early EOS).
  """
  rows = jnp.arange(batch)[:, None]
  alive_seq = jnp.zeros((batch, beams, n_new), jnp.int32)
  # only the first hypothesis is live at the start, so the beams begin distinct
  alive_logp = jnp.tile(jnp.where(jnp.arange(beams) == 0, 0.0, -jnp.inf), (batch, 1))
  done_seq = jnp.zeros((batch, beams, n_new), jnp.int32)
  done_score = jnp.full((batch, beams), -jnp.inf)

  def penalized(logp, length):
    return logp / jnp.asarray(length, jnp.float32) ** length_penalty

  def body(carry):
    i, logp, alive_seq, alive_logp, done_seq, done_score, state = carry
    vocab = logp.shape[-1]
    scores = (alive_logp[:, :, None] + logp.reshape(batch, beams, vocab)).reshape(batch, -1)
    top, index = jax.lax.top_k(scores, 2 * beams)
    origin, token = index // vocab, index % vocab
    seqs = alive_seq[rows, origin].at[:, :, i].set(token)
    ends = token == eos_id
    finished = ends & (jnp.arange(2 * beams) < beams)
    merged_seq = jnp.concatenate([done_seq, seqs], axis=1)
    merged = jnp.concatenate([done_score, jnp.where(finished, penalized(top, i + 1),
                                                    -jnp.inf)], axis=1)
    done_score, keep = jax.lax.top_k(merged, beams)
    done_seq = merged_seq[rows, keep]
    live = jnp.where(ends, -jnp.inf, top)
    alive_logp, keep = jax.lax.top_k(live, beams)
    alive_seq, origin = seqs[rows, keep], origin[rows, keep]
    state = reorder(state, (rows * beams + origin).reshape(-1))
    token = jax.lax.dynamic_index_in_dim(alive_seq, i, axis=2, keepdims=False)
    logp, state = step(token.reshape(-1), i + 1, state)
    return i + 1, logp, alive_seq, alive_logp, done_seq, done_score, state

  def more(carry):
    i, _, _, alive_logp, _, done_score, _ = carry
    # a positive penalty favours length: the best a live one can reach is at n_new tokens
    best_possible = penalized(alive_logp[:, 0],
                              jnp.where(length_penalty > 0, n_new, jnp.maximum(i, 1)))
    return (i < n_new) & ~jnp.all(done_score[:, -1] >= best_possible)

  carry = (0, first, alive_seq, alive_logp, done_seq, done_score, state)
  _, _, alive_seq, alive_logp, done_seq, done_score, _ = jax.lax.while_loop(more, body, carry)
  # unfinished hypotheses (out of budget) compete at the full length
  scores = jnp.concatenate([done_score, penalized(alive_logp, n_new)], axis=1)
  seqs = jnp.concatenate([done_seq, alive_seq], axis=1)
  return seqs[jnp.arange(batch), jnp.argmax(scores, axis=1)]


def beam_seq2seq(model: nn.Module, params, inputs: np.ndarray, max_new_tokens: int, *,
                 beams: int, eos_id: int, input_segment_ids: np.ndarray | None = None,
                 start_id: int = 0, length_penalty: float = 1.0) -> np.ndarray:
  """``beam_search`` of an encoder-decoder, each row's best hypothesis ``[batch,
  max_new_tokens]`` (its EOS kept, 0 after it). The encoder runs once per row; the decoder's
  cache is carried per hypothesis and gathered as hypotheses move."""
  if beams < 1 or max_new_tokens <= 0:
    raise UsageError(f'beam search needs --beams >= 1 and max new tokens > 0, got {beams} '
                     f'and {max_new_tokens}')
  return np.asarray(_seq2seq_beams(params, np.asarray(inputs, np.int32), input_segment_ids,
                                   jnp.float32(length_penalty), model=model,
                                   n_new=max_new_tokens, beams=beams, start_id=start_id,
                                   eos_id=eos_id))
