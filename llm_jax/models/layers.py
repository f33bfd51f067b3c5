"""The building blocks every model family is configured from.

Every parameter carries logical axis names (``vocab``, ``embed``, ``heads``, ``kv``, ``mlp``)
so that one rules table in the config decides how it is sharded on any mesh. Projections are
written as ``self.param`` + ``lax.dot_general`` rather than ``nn.DenseGeneral``, which cannot
carry three logical names (DESIGN pitfall 3).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from llm_jax.models import lora

Initializer = Callable[..., jax.Array]


def normal(std: float) -> Initializer:
  return nn.initializers.normal(stddev=std)


class Dense(nn.Module):
  """Contracts the last ``len(in_axes)`` dims of ``x`` into ``features``.

  Matmuls accumulate in float32 whatever ``dtype`` computes in: on CPUs with bf16 units a
  plain bf16 dot is slower than f32, and only ``preferred_element_type=float32`` wins
  (DESIGN pitfall 6); on accelerators it is also what keeps bf16 training stable. Inside a
  model that enables LoRA on this module's path, a low-rank adapter is added (``lora.py``).
  """

  features: tuple[int, ...]
  in_axes: tuple[str | None, ...]
  out_axes: tuple[str | None, ...]
  use_bias: bool = True
  kernel_init: Initializer = normal(0.02)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    n_in = len(self.in_axes)
    kernel = self.param(
        'kernel',
        nn.with_logical_partitioning(self.kernel_init, self.in_axes + self.out_axes),
        x.shape[-n_in:] + tuple(self.features), jnp.float32)
    contract = (tuple(range(x.ndim - n_in, x.ndim)), tuple(range(n_in)))
    y = jax.lax.dot_general(
        x.astype(self.dtype), kernel.astype(self.dtype), (contract, ((), ())),
        preferred_element_type=jnp.float32)
    if self.use_bias:
      bias = self.param(
          'bias', nn.with_logical_partitioning(nn.initializers.zeros, self.out_axes),
          tuple(self.features), jnp.float32)
      y = y + bias
    adapted = lora.active(self.path)
    if adapted is not None:
      config, deterministic = adapted
      y = y + lora.Adapter(config, tuple(self.features), self.in_axes, self.out_axes,
                           deterministic, self.dtype, name=lora.ADAPTER)(x)
    return y.astype(self.dtype)


class Embed(nn.Module):
  """Token embedding table, also usable as the tied output projection (``attend``)."""

  vocab_size: int
  features: int
  init_std: float = 0.02
  dtype: Any = jnp.float32

  def setup(self):
    self.embedding = self.param(
        'embedding', nn.with_logical_partitioning(normal(self.init_std), ('vocab', 'embed')),
        (self.vocab_size, self.features), jnp.float32)

  def __call__(self, ids: jax.Array) -> jax.Array:
    # Gathering from an embed-sharded table would rematerialize all of it (DESIGN pitfall 5).
    table = nn.with_logical_constraint(self.embedding, ('vocab', None))
    return jnp.take(table, ids, axis=0).astype(self.dtype)

  def attend(self, x: jax.Array) -> jax.Array:
    return jnp.einsum('...d,vd->...v', x.astype(self.dtype), self.embedding.astype(self.dtype),
                      preferred_element_type=jnp.float32)


def make_norm(kind: str, eps: float, use_bias: bool, dtype: Any, name: str | None) -> nn.Module:
  """LayerNorm or RMSNorm over ``embed``; pass ``name=None`` in ``setup``, which names by
  attribute."""
  scale_init = nn.with_logical_partitioning(nn.initializers.ones, ('embed',))
  if kind == 'layernorm':
    return nn.LayerNorm(epsilon=eps, use_bias=use_bias, dtype=dtype, param_dtype=jnp.float32,
                        scale_init=scale_init,
                        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ('embed',)),
                        name=name)
  if kind == 'rmsnorm':
    return nn.RMSNorm(epsilon=eps, dtype=dtype, param_dtype=jnp.float32, scale_init=scale_init,
                      name=name)
  raise ValueError(f'unknown norm {kind!r}')


def head_norm(eps: float, dtype: Any, name: str) -> nn.Module:
  """RMSNorm over each head's ``kv`` features, one scale shared by the heads (Qwen3)."""
  return nn.RMSNorm(epsilon=eps, dtype=dtype, param_dtype=jnp.float32, name=name,
                    scale_init=nn.with_logical_partitioning(nn.initializers.ones, ('kv',)))


def sinusoidal_positions(positions: jax.Array, features: int) -> jax.Array:
  """The fixed sin/cos table of "Attention is all you need", for any positions."""
  half = features // 2
  inv_freq = jnp.exp(-math.log(10000.0) * jnp.arange(half, dtype=jnp.float32) / half)
  angles = positions[..., None].astype(jnp.float32) * inv_freq
  return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


def apply_rope(x: jax.Array, positions: jax.Array, theta: float) -> jax.Array:
  """Rotary position embedding on ``x[batch, length, heads, head_dim]``.

  Uses the half-split layout (first half paired with second half) of GPT-NeoX and Hugging
  Face LLaMA, so imported checkpoints need no permutation of their q/k weights.
  """
  head_dim = x.shape[-1]
  inv_freq = 1.0 / theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim)
  angles = positions[..., None].astype(jnp.float32) * inv_freq  # [b, l, d/2]
  sin = jnp.sin(angles)[:, :, None, :]
  cos = jnp.cos(angles)[:, :, None, :]
  x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
  rotated = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return rotated.astype(x.dtype)


def relative_position_bias(table: jax.Array, query_positions: jax.Array,
                           key_positions: jax.Array, *, bidirectional: bool,
                           max_distance: int) -> jax.Array:
  """T5's bucketed relative attention bias, ``[batch, heads, q_len, k_len]``.

  ``table[bucket, head]`` holds one learned scalar per bucket: exact distances up to half the
  buckets, then logarithmically wider ones up to ``max_distance``. An encoder
  (``bidirectional``) gives keys before and after a query separate halves of the buckets; a
  decoder only ever sees keys at or before its query. Written as Hugging Face's
  ``T5Attention._relative_position_bucket`` so imported checkpoints agree exactly.
  """
  num_buckets = table.shape[0]
  relative = key_positions[:, None, :] - query_positions[:, :, None]
  bucket = jnp.zeros_like(relative)
  if bidirectional:
    num_buckets //= 2
    bucket = bucket + (relative > 0) * num_buckets
    relative = jnp.abs(relative)
  else:
    relative = -jnp.minimum(relative, 0)
  max_exact = num_buckets // 2
  # log of at least max_exact: the small distances take the exact branch anyway
  scaled = jnp.log(jnp.maximum(relative, max_exact).astype(jnp.float32) / max_exact)
  large = max_exact + (scaled / math.log(max_distance / max_exact)
                       * (num_buckets - max_exact)).astype(relative.dtype)
  large = jnp.minimum(large, num_buckets - 1)
  bucket = bucket + jnp.where(relative < max_exact, relative, large)
  return jnp.take(table, bucket, axis=0).transpose(0, 3, 1, 2)


def attention_mask(query_valid: jax.Array | None, key_valid: jax.Array | None, causal: bool,
                   query_segments: jax.Array | None = None,
                   key_segments: jax.Array | None = None,
                   query_positions: jax.Array | None = None,
                   key_positions: jax.Array | None = None) -> jax.Array | None:
  """A boolean ``[batch, 1, q_len, k_len]`` mask: True where a query may attend a key.

  Causality compares positions (not indices), so the same rule serves a full sequence, a
  packed row with per-document positions (together with segment ids), and a decode step
  against a KV cache.
  """
  masks = []
  if query_valid is not None and key_valid is not None:
    masks.append(query_valid[:, :, None] & key_valid[:, None, :])
  elif key_valid is not None:
    masks.append(key_valid[:, None, :])
  if query_segments is not None and key_segments is not None:
    masks.append(query_segments[:, :, None] == key_segments[:, None, :])
  if causal:
    masks.append(query_positions[:, :, None] >= key_positions[:, None, :])
  if not masks:
    return None
  mask = masks[0]
  for m in masks[1:]:
    mask = mask & m
  return mask[:, None, :, :]


# model.attention -> jax.nn.dot_product_attention's implementation. 'xla' runs everywhere;
# 'cudnn' is cuDNN's fused flash attention (NVIDIA GPUs, bf16/fp16).
ATTENTION_IMPLEMENTATIONS = ('xla', 'cudnn')


def attention_errors(implementation: str, dtype: str, backend: str | None = None) -> list[str]:
  """Why ``implementation`` cannot run in ``dtype`` (and on ``backend``, when given: asking
  jax for it starts the backend, which must wait for ``jax.distributed.initialize``)."""
  if implementation not in ATTENTION_IMPLEMENTATIONS:
    return [f'model.attention={implementation!r} is not one of {ATTENTION_IMPLEMENTATIONS}']
  if implementation == 'cudnn' and backend not in (None, 'gpu'):
    return [(f'model.attention="cudnn" needs an NVIDIA GPU, but jax runs on {backend}; '
             'use model.attention="xla"')]
  if implementation == 'cudnn' and dtype == 'float32':
    return [('model.attention="cudnn" computes in bfloat16 or float16; set '
             'model.dtype="bfloat16" or use model.attention="xla"')]
  return []


def attend(q: jax.Array, k: jax.Array, v: jax.Array, bias: jax.Array | None,
           mask: jax.Array | None, scaled: bool, implementation: str = 'xla') -> jax.Array:
  """Softmax attention of ``q[b, t, heads, d]`` over ``k``/``v[b, s, kv_heads, d]``: scores
  and softmax in float32 whatever the inputs' dtype, grouped heads without copies."""
  return jax.nn.dot_product_attention(q, k, v, bias=bias, mask=mask,
                                      scale=None if scaled else 1.0,
                                      implementation=implementation)


class Attention(nn.Module):
  """Multi-head attention with grouped-query heads, optional RoPE, bias and a KV cache.

  Self-attention passes ``kv_input=x``; cross-attention (``cross``) passes the encoder output.
  In ``decode`` mode the keys and values of every self-attention call are written into the
  ``cache`` collection at ``cache_index``, so a prompt can be prefilled in one call and then
  extended one token at a time inside a jitted loop. Cross-attention keys and values depend on
  the encoder output alone: the decode call that passes it stores them, and later steps pass
  ``kv_input=None`` to read them back instead of projecting the encoder output again.

  ``position_bias(query_positions, key_positions)`` (T5's relative bias) is added to the
  scores; it is a function rather than an array because in decode mode only this layer knows
  the positions of its cached keys. ``scaled=False`` drops the ``1/sqrt(head_dim)`` factor
  (T5), which the query's initialization then carries instead.
  """

  num_heads: int
  num_kv_heads: int
  head_dim: int
  use_bias: bool = True
  rope_theta: float | None = None
  out_init_std: float = 0.02
  init_std: float = 0.02
  dtype: Any = jnp.float32
  scaled: bool = True
  cross: bool = False
  implementation: str = 'xla'  # of full-sequence attention: ATTENTION_IMPLEMENTATIONS
  qkv_bias: bool = False  # biases on query, key and value even without use_bias (Qwen2)
  qk_norm_eps: float | None = None  # RMSNorm of each head's query and key, before RoPE (Qwen3)

  @nn.compact
  def __call__(self, x: jax.Array, kv_input: jax.Array | None, mask: jax.Array | None,
               positions: jax.Array | None, *, decode: bool = False,
               position_bias: Callable[[jax.Array, jax.Array], jax.Array] | None = None
               ) -> jax.Array:
    def proj(name, heads, inp, std=self.init_std):
      return Dense((heads, self.head_dim), ('embed',), ('heads', 'kv'),
                   self.use_bias or self.qkv_bias, normal(std), self.dtype, name=name)(inp)

    q_std = self.init_std if self.scaled else self.init_std / math.sqrt(self.head_dim)
    q = proj('query', self.num_heads, x, q_std)
    if self.qk_norm_eps is not None:
      q = head_norm(self.qk_norm_eps, self.dtype, 'query_norm')(q)
    if self.cross and decode and kv_input is None:
      k, v = self.get_variable('cache', 'cached_key'), self.get_variable('cache', 'cached_value')
    else:
      k = proj('key', self.num_kv_heads, kv_input)
      if self.qk_norm_eps is not None:
        k = head_norm(self.qk_norm_eps, self.dtype, 'key_norm')(k)
      v = proj('value', self.num_kv_heads, kv_input)
      if self.cross and decode:
        self.put_variable('cache', 'cached_key', k)
        self.put_variable('cache', 'cached_value', v)
    if self.rope_theta is not None:
      q = apply_rope(q, positions, self.rope_theta)
      k = apply_rope(k, positions, self.rope_theta)
    q = nn.with_logical_constraint(q, ('batch', 'length', 'heads', 'kv'))

    key_positions = positions
    if decode and not self.cross:
      k, v, mask, key_positions = self._update_cache(k, v, positions)

    bias = None
    if position_bias is not None:
      bias = position_bias(positions, key_positions).astype(q.dtype)
    out = attend(q, k, v, bias, mask, self.scaled, self.implementation)
    out = Dense((x.shape[-1],), ('heads', 'kv'), ('embed',), self.use_bias,
                normal(self.out_init_std), self.dtype, name='out')(out)
    return out

  def _update_cache(self, k, v, positions):
    """Writes this call's keys/values at the cache index.

    Returns the whole cache, its mask and the positions of its keys.
    """
    initialized = self.has_variable('cache', 'cached_key')
    cached_k = self.variable('cache', 'cached_key', jnp.zeros, k.shape, k.dtype)
    cached_v = self.variable('cache', 'cached_value', jnp.zeros, v.shape, v.dtype)
    index = self.variable('cache', 'cache_index', lambda: jnp.array(0, jnp.int32))
    if not initialized:  # the init call only shapes the cache (its length = the input's)
      return k, v, None, positions
    start = index.value
    cached_k.value = jax.lax.dynamic_update_slice(cached_k.value, k, (0, start, 0, 0))
    cached_v.value = jax.lax.dynamic_update_slice(cached_v.value, v, (0, start, 0, 0))
    index.value = start + k.shape[1]
    cache_len = cached_k.value.shape[1]
    key_positions = jnp.broadcast_to(jnp.arange(cache_len), (k.shape[0], cache_len))
    mask = attention_mask(None, key_positions < index.value, True,
                          query_positions=positions, key_positions=key_positions)
    return cached_k.value, cached_v.value, mask, key_positions


class Mlp(nn.Module):
  """The feed-forward block: plain (GELU, ReLU) or gated (SwiGLU, GeGLU)."""

  hidden: int
  activation: str = 'gelu'
  use_bias: bool = True
  init_std: float = 0.02
  out_init_std: float = 0.02
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    act, gated = ACTIVATIONS[self.activation]

    def dense_in(name):
      return Dense((self.hidden,), ('embed',), ('mlp',), self.use_bias, normal(self.init_std),
                   self.dtype, name=name)(x)

    h = act(dense_in('wi'))
    if gated:
      h = h * dense_in('wi_gate')
    h = nn.with_logical_constraint(h, ('batch', 'length', 'mlp'))
    return Dense((x.shape[-1],), ('mlp',), ('embed',), self.use_bias, normal(self.out_init_std),
                 self.dtype, name='wo')(h)


def gelu(x: jax.Array) -> jax.Array:
  """Exact GELU written as PyTorch's kernel computes it, ``x/2 * (1 + erf(x/sqrt(2)))``.

  ``jax.nn.gelu(approximate=False)`` goes through ``erfc``, which XLA:CPU expands into a
  piecewise approximation whose gradient it fuses with a transposing copy: that made the MLP
  activation a third of nanoGPT's CPU training step (42 ms, 31 ms with this form). Values stay
  within 1.2e-6 of float64 GELU, as PyTorch's do.
  """
  return 0.5 * x * (1 + jax.lax.erf(x * math.sqrt(0.5)))


# name -> (activation, whether the MLP is gated by a second input projection)
ACTIVATIONS: dict[str, tuple[Callable[[jax.Array], jax.Array], bool]] = {
    'gelu': (gelu, False),
    'gelu_tanh': (lambda x: jax.nn.gelu(x, approximate=True), False),
    'relu': (jax.nn.relu, False),
    'swiglu': (jax.nn.silu, True),
    'geglu': (lambda x: jax.nn.gelu(x, approximate=True), True),
}

