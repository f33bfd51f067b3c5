"""One Transformer, configured into GPT, LLaMA-style and (later) BERT and T5 variants.

Families differ only in ``TransformerConfig`` fields (norm, norm placement, positions, MLP
kind, biases, head grouping, tying), never in copied blocks.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from llm_jax.models import layers

NORMS = ('layernorm', 'rmsnorm')
POSITIONS = ('learned', 'sinusoidal', 'rope', 'none')


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  """Architecture hyperparameters; hashable so it can be a static jit argument."""

  vocab_size: int
  d_model: int = 128
  num_heads: int = 4
  num_kv_heads: int = 0  # 0: as many as num_heads (MHA); 1: multi-query; else grouped-query
  head_dim: int = 0  # 0: d_model // num_heads
  num_layers: int = 4
  d_ff: int = 0  # 0: 4 * d_model
  max_len: int = 1024
  dropout: float = 0.0
  norm: str = 'layernorm'
  norm_eps: float = 1e-5
  pre_norm: bool = True
  positions: str = 'learned'
  rope_theta: float = 10000.0
  mlp: str = 'gelu'
  use_bias: bool = True
  tie_embeddings: bool = True
  init_std: float = 0.02
  dtype: str = 'float32'

  @property
  def kv_heads(self) -> int:
    return self.num_kv_heads or self.num_heads

  @property
  def dim_per_head(self) -> int:
    return self.head_dim or self.d_model // self.num_heads

  @property
  def ff_dim(self) -> int:
    return self.d_ff or 4 * self.d_model

  @property
  def compute_dtype(self) -> Any:
    return jnp.dtype(self.dtype)

  def errors(self) -> list[str]:
    """Every impossible combination, each as a message naming the field and the fix."""
    out = []
    for name in ('vocab_size', 'd_model', 'num_heads', 'num_layers', 'max_len'):
      if getattr(self, name) <= 0:
        out.append(f'model.{name} must be positive, got {getattr(self, name)}')
    if self.num_heads > 0 and not self.head_dim and self.d_model % self.num_heads:
      out.append(f'model.d_model={self.d_model} is not divisible by model.num_heads='
                 f'{self.num_heads}; change one or set model.head_dim')
    if self.num_kv_heads and self.num_heads % self.num_kv_heads:
      out.append(f'model.num_heads={self.num_heads} is not a multiple of model.num_kv_heads='
                 f'{self.num_kv_heads}')
    if self.norm not in NORMS:
      out.append(f'model.norm={self.norm!r} is not one of {NORMS}')
    if self.positions not in POSITIONS:
      out.append(f'model.positions={self.positions!r} is not one of {POSITIONS}')
    if self.mlp not in layers.ACTIVATIONS:
      out.append(f'model.mlp={self.mlp!r} is not one of {tuple(layers.ACTIVATIONS)}')
    if self.positions == 'rope' and self.dim_per_head % 2:
      out.append(f'rotary positions need an even head dim, got {self.dim_per_head}')
    if not 0.0 <= self.dropout < 1.0:
      out.append(f'model.dropout must be in [0, 1), got {self.dropout}')
    if self.dtype not in ('float32', 'bfloat16', 'float16'):
      out.append(f'model.dtype={self.dtype!r} is not one of float32, bfloat16, float16')
    return out


class Block(nn.Module):
  """Self-attention and MLP, each a residual branch, normalized before (pre) or after (post)."""

  cfg: TransformerConfig

  @nn.compact
  def __call__(self, x, mask, positions, *, deterministic: bool, decode: bool = False):
    cfg = self.cfg
    dtype = cfg.compute_dtype
    # GPT-2's scaled init: each residual branch's output projection by 1/sqrt(2 * layers).
    out_std = cfg.init_std / math.sqrt(2 * cfg.num_layers)

    def norm(name):
      return layers.make_norm(cfg.norm, cfg.norm_eps, cfg.use_bias, dtype, name)

    def residual(branch, name, x):
      def dropped(h):
        return nn.Dropout(cfg.dropout)(branch(h), deterministic=deterministic)
      if cfg.pre_norm:
        return x + dropped(norm(name)(x))
      return norm(name)(x + dropped(x))

    attention = layers.Attention(
        cfg.num_heads, cfg.kv_heads, cfg.dim_per_head, cfg.use_bias,
        cfg.rope_theta if cfg.positions == 'rope' else None, out_std, cfg.init_std, dtype,
        name='attention')
    x = residual(lambda h: attention(h, h, mask, positions, decode=decode), 'attention_norm', x)
    mlp = layers.Mlp(cfg.ff_dim, cfg.mlp, cfg.use_bias, cfg.init_std, out_std, dtype, name='mlp')
    x = residual(mlp, 'mlp_norm', x)
    return nn.with_logical_constraint(x, ('batch', 'length', 'embed'))


class DecoderLM(nn.Module):
  """A decoder-only language model (GPT-2, LLaMA-style) returning float32 logits.

  ``positions`` default to ``0..length-1``; packed rows pass per-document positions and
  ``segment_ids`` so attention never crosses a document boundary.
  """

  cfg: TransformerConfig

  @nn.compact
  def __call__(self, tokens: jax.Array, positions: jax.Array | None = None,
               segment_ids: jax.Array | None = None, *, deterministic: bool = True,
               decode: bool = False) -> jax.Array:
    cfg = self.cfg
    dtype = cfg.compute_dtype
    if positions is None:
      positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
    embed = layers.Embed(cfg.vocab_size, cfg.d_model, cfg.init_std, dtype, name='embed')
    x = embed(tokens)
    if cfg.positions == 'learned':
      table = self.param('pos_embedding',
                         nn.with_logical_partitioning(layers.normal(cfg.init_std),
                                                      (None, 'embed')),
                         (cfg.max_len, cfg.d_model), jnp.float32)
      x = x + jnp.take(table, positions, axis=0).astype(dtype)
    elif cfg.positions == 'sinusoidal':
      x = x + layers.sinusoidal_positions(positions, cfg.d_model).astype(dtype)
    x = nn.Dropout(cfg.dropout)(x, deterministic=deterministic)
    x = nn.with_logical_constraint(x, ('batch', 'length', 'embed'))

    mask = None
    if not decode:  # in decode mode each attention layer masks against its own cache
      mask = layers.attention_mask(None, None, True, segment_ids, segment_ids,
                                   positions, positions)
    for i in range(cfg.num_layers):
      x = Block(cfg, name=f'block_{i}')(x, mask, positions, deterministic=deterministic,
                                        decode=decode)
    x = layers.make_norm(cfg.norm, cfg.norm_eps, cfg.use_bias, dtype, 'final_norm')(x)
    if cfg.tie_embeddings:
      return embed.attend(x)
    return layers.Dense((cfg.vocab_size,), ('embed',), ('vocab',), False,
                        layers.normal(cfg.init_std), dtype, name='lm_head')(x).astype(jnp.float32)
