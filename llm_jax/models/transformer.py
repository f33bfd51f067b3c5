"""One Transformer, configured into GPT, LLaMA-style, BERT/RoBERTa and T5 variants.

Families differ only in ``TransformerConfig`` fields (norm, norm placement, positions and
their scaling, MLP kind, biases, head grouping, tying, token types, attention scaling, windows
and soft caps), never in copied blocks: Mistral is LLaMA with a sliding window, Gemma is LLaMA
with a (1 + w) RMSNorm, scaled embeddings and GeGLU, Gemma 2 adds norms after each branch,
soft caps and alternating local/global layers.
A ``Stack`` (embedding additions, blocks, final norm) is the encoder or the decoder of every
family; ``DecoderLM`` here, ``EncoderLM`` and ``EncoderDecoderLM`` beside it add the token
table and the heads.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from llm_jax.models import layers, paths
from llm_jax.models import lora as lora_lib

# lstm, mlp: the Keras-style non-Transformer classifiers (models/lstm.py, models/mlp.py)
KINDS = ('decoder', 'encoder', 'encoder_decoder', 'lstm', 'mlp')
RECURRENT_OR_DENSE = ('lstm', 'mlp')  # kinds without attention
NORMS = ('layernorm', 'rmsnorm', 'rmsnorm_plus_one')  # the last: scaled by 1 + w (Gemma)
POSITIONS = ('learned', 'sinusoidal', 'rope', 'relative', 'none')
# remat policy -> what jax.checkpoint saves (None: everything is recomputed from the input)
REMAT_POLICIES = {'full': None, 'save_dots': jax.checkpoint_policies.dots_saveable}


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  """Architecture hyperparameters; hashable so it can be a static jit argument."""

  vocab_size: int
  kind: str = 'decoder'  # decoder (GPT, LLaMA) | encoder (BERT) | encoder_decoder (T5) | lstm
  d_model: int = 128
  num_heads: int = 4
  num_kv_heads: int = 0  # 0: as many as num_heads (MHA); 1: multi-query; else grouped-query
  head_dim: int = 0  # 0: d_model // num_heads
  num_layers: int = 4  # the encoder's, for encoder_decoder
  num_decoder_layers: int = 0  # encoder_decoder only; 0: num_layers
  d_ff: int = 0  # 0: 4 * d_model
  max_len: int = 1024
  dropout: float = 0.0
  norm: str = 'layernorm'
  norm_eps: float = 1e-5
  pre_norm: bool = True  # False: BERT's post-norm (and then no final norm)
  positions: str = 'learned'
  position_offset: int = 0  # learned positions start at this row (RoBERTa: 2, past padding)
  rope_theta: float = 10000.0
  rope_scaling: str = 'none'  # long-context frequency scaling: none | linear | llama3 | yarn
  rope_factor: float = 1.0  # linear, llama3, yarn: how much longer than pretraining
  rope_original_max_len: int = 0  # llama3, yarn: the context the checkpoint was pretrained at
  rope_low_freq_factor: float = 1.0  # llama3: wavelengths over original / this are stretched
  rope_high_freq_factor: float = 4.0  # llama3: wavelengths under original / this are kept
  rope_beta_fast: float = 32.0  # yarn: the ramp between these many rotations ...
  rope_beta_slow: float = 1.0  # ... and these
  rope_attention_factor: float = 0.0  # yarn: cos/sin scale (0: 0.1 ln(factor) + 1)
  sliding_window: int = 0  # each query attends the keys this many positions back (0: all)
  global_every: int = 0  # with a window: every Nth layer (the last of each N) attends all
  relative_buckets: int = 32  # T5 relative bias: buckets and the distance the last one starts
  relative_max_distance: int = 128
  mlp: str = 'gelu'
  use_bias: bool = True
  qkv_bias: bool = False  # biases on the query/key/value projections alone (Qwen2)
  qk_norm: bool = False  # RMSNorm of each head's query and key before RoPE (Qwen3)
  type_vocab_size: int = 0  # token-type (segment A/B) embeddings, BERT; 0: none
  embed_norm: bool = False  # normalize the summed embeddings (BERT)
  scaled_attention: bool = True  # False: T5's q.k without 1/sqrt(head_dim)
  query_scale_dim: int = 0  # scores times 1/sqrt(this) (0: head_dim; Gemma 2's scalar)
  attention_softcap: float = 0.0  # scores bounded by softcap * tanh(s / softcap) (Gemma 2)
  logit_softcap: float = 0.0  # the same bound on the output logits (Gemma 2)
  sandwich_norm: bool = False  # also normalize each branch's output (Gemma 2)
  embed_scale: bool = False  # token embeddings times sqrt(d_model) (Gemma)
  tie_embeddings: bool = True
  rescale_logits: bool = False  # T5 v1.0: final states times d_model**-0.5 before the output
  mlm_head: bool = True  # encoder only: BERT's masked-LM head; False: a bare encoder
  pooler: bool = False  # encoder only: BERT's dense + tanh on the first ([CLS]) token
  nsp_head: bool = False  # encoder with pooler: BERT's next-sentence classifier on the pool
  init_std: float = 0.02
  init: str = 'normal'  # weight matrices: normal (init_std) | xavier_uniform | he_normal | ...
  init_scale: float = 0.1  # init='uniform': the bound of U(-init_scale, init_scale)
  dtype: str = 'float32'
  remat: str = 'none'  # activations kept for the backward pass: none | full | save_dots
  scan_layers: bool = False  # one nn.scan over stacked blocks: compile time flat in depth
  attention: str = 'xla'  # full-sequence attention kernel: xla | cudnn (layers.attend)
  lstm_hidden: tuple[int, ...] = ()  # kind='lstm': hidden size per layer, bottom up; (): d_model
  mlp_hidden: tuple[int, ...] = ()  # kind='mlp': hidden widths, bottom up ((): logistic regression)

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
  def decoder_layers(self) -> int:
    return self.num_decoder_layers or self.num_layers

  @property
  def kernel_init(self) -> layers.KernelInit:
    """The initializer of weight matrices outside the blocks (heads, pooler, untied output)."""
    return layers.KernelInit(self.init, self.init_std, self.init_scale)

  @property
  def compute_dtype(self) -> Any:
    return jnp.dtype(self.dtype)

  @property
  def rope(self) -> layers.Rope | None:
    if self.positions != 'rope':
      return None
    return layers.Rope(self.rope_theta, self.rope_scaling, self.rope_factor,
                       self.rope_original_max_len, self.rope_low_freq_factor,
                       self.rope_high_freq_factor, self.rope_beta_fast, self.rope_beta_slow,
                       self.rope_attention_factor)

  def window(self, layer: int) -> int:
    """The attention window of block ``layer`` (0: it attends every earlier position)."""
    if self.global_every and (layer + 1) % self.global_every == 0:
      return 0
    return self.sliding_window

  def errors(self) -> list[str]:
    """Every impossible combination, each as a message naming the field and the fix."""
    out = []
    for name in ('vocab_size', 'd_model', 'num_heads', 'num_layers', 'max_len'):
      if getattr(self, name) <= 0:
        out.append(f'model.{name} must be positive, got {getattr(self, name)}')
    for name in ('num_decoder_layers', 'position_offset', 'type_vocab_size'):
      if getattr(self, name) < 0:
        out.append(f'model.{name} must be >= 0, got {getattr(self, name)}')
    if self.remat not in ('none',) + tuple(REMAT_POLICIES):
      out.append(f'model.remat={self.remat!r} is not one of none, full, save_dots')
    if self.kind not in KINDS:
      out.append(f'model.kind={self.kind!r} is not one of {KINDS}')
    if self.kind not in RECURRENT_OR_DENSE and self.num_heads > 0 and not self.head_dim and \
        self.d_model % self.num_heads:
      out.append(f'model.d_model={self.d_model} is not divisible by model.num_heads='
                 f'{self.num_heads}; change one or set model.head_dim')
    if self.num_kv_heads and self.num_heads % self.num_kv_heads:
      divisors = [d for d in range(1, self.num_heads + 1) if self.num_heads % d == 0]
      out.append(f'model.num_heads={self.num_heads} is not a multiple of model.num_kv_heads='
                 f'{self.num_kv_heads}; set model.num_kv_heads to one of {divisors} '
                 '(0: one per head)')
    if self.norm not in NORMS:
      out.append(f'model.norm={self.norm!r} is not one of {NORMS}')
    if self.positions not in POSITIONS:
      out.append(f'model.positions={self.positions!r} is not one of {POSITIONS}')
    if self.mlp not in layers.ACTIVATIONS:
      out.append(f'model.mlp={self.mlp!r} is not one of {tuple(layers.ACTIVATIONS)}')
    if self.positions == 'rope' and self.dim_per_head % 2:
      out.append(f'rotary positions need an even head dim, got {self.dim_per_head}')
    if self.positions == 'rope':
      out += self.rope.errors()
    elif self.rope_scaling != 'none':
      out.append(f'model.rope_scaling={self.rope_scaling!r} needs model.positions="rope"')
    for name in ('sliding_window', 'global_every', 'query_scale_dim'):
      if getattr(self, name) < 0:
        out.append(f'model.{name} must be >= 0, got {getattr(self, name)}')
    if self.global_every and not self.sliding_window:
      out.append('model.global_every alternates windowed and global layers: set '
                 'model.sliding_window too')
    if self.global_every and self.scan_layers:
      out.append('model.global_every gives layers different windows, which one scanned block '
                 'cannot; set model.scan_layers=false')
    if self.kind != 'decoder' and (self.sliding_window or self.embed_scale or
                                   self.logit_softcap):
      out.append('model.sliding_window, model.embed_scale and model.logit_softcap belong to '
                 f'kind="decoder", not {self.kind!r}')
    if min(self.attention_softcap, self.logit_softcap) < 0:
      out.append('model.attention_softcap and model.logit_softcap must be >= 0 (0: off)')
    if self.attention_softcap and self.attention != 'xla':
      out.append('model.attention_softcap is computed by llm_jax\'s own attention: set '
                 'model.attention="xla"')
    if self.positions == 'relative' and self.relative_buckets < 4:
      out.append(f'model.relative_buckets must be at least 4, got {self.relative_buckets}')
    if self.kind != 'encoder' and (self.pooler or not self.mlm_head or self.nsp_head):
      out.append('model.pooler, model.mlm_head and model.nsp_head belong to kind="encoder", '
                 f'not {self.kind!r}')
    if self.nsp_head and not self.pooler:
      out.append('model.nsp_head classifies the pooled [CLS] vector: set model.pooler=true')
    if self.kind != 'lstm' and self.lstm_hidden:
      out.append(f'model.lstm_hidden belongs to kind="lstm", not {self.kind!r}')
    if self.kind != 'mlp' and self.mlp_hidden:
      out.append(f'model.mlp_hidden belongs to kind="mlp", not {self.kind!r}')
    if not 0.0 <= self.dropout < 1.0:
      out.append(f'model.dropout must be in [0, 1), got {self.dropout}')
    if self.init not in layers.INITS:
      out.append(f'model.init={self.init!r} is not one of {layers.INITS}')
    if self.init == 'uniform' and self.kind != 'lstm':
      out.append('model.init="uniform" is the LSTM language models\' init (every weight of '
                 'U(-init_scale, init_scale)); for a Transformer use xavier_uniform or he_uniform')
    if self.init != 'uniform' and self.init_scale != TransformerConfig.init_scale:
      out.append(f'model.init_scale={self.init_scale} is read by model.init="uniform" only; '
                 'leave it at its default or set model.init="uniform"')
    if self.init_scale <= 0:
      out.append(f'model.init_scale must be > 0, got {self.init_scale}')
    if self.dtype not in ('float32', 'bfloat16', 'float16'):
      out.append(f'model.dtype={self.dtype!r} is not one of float32, bfloat16, float16')
    if self.kind not in RECURRENT_OR_DENSE:
      out += layers.attention_errors(self.attention, self.dtype)
    return out


class Block(nn.Module):
  """Self-attention, cross-attention (``cross``) and MLP, each a residual branch normalized
  before it (pre-norm) or after the residual sum (post-norm, BERT).

  Arguments are positional with the two Python flags last, so that ``nn.remat`` and
  ``nn.scan`` can mark them static; T5's relative-bias table arrives as an array and the
  block builds its lookup (``causal`` decides whether the buckets are bidirectional).
  """

  cfg: TransformerConfig
  cross: bool = False
  causal: bool = True
  window: int = 0  # sliding-window self-attention (0: every earlier position)

  @nn.compact
  def __call__(self, x, mask, positions, bias_table, encoded, cross_mask, deterministic: bool,
               decode: bool = False):
    cfg = self.cfg
    dtype = cfg.compute_dtype
    # GPT-2's scaled init: each residual branch's output projection by 1/sqrt(2 * layers).
    out_std = cfg.init_std / math.sqrt(2 * cfg.num_layers)

    def norm(name):
      return layers.make_norm(cfg.norm, cfg.norm_eps, cfg.use_bias, dtype, name)

    def residual(branch, name, x):
      def dropped(h):
        h = branch(h)
        if cfg.sandwich_norm:  # Gemma 2: the branch's output is normalized too
          h = norm('post_' + name.removesuffix('_norm') + '_norm')(h)
        return nn.Dropout(cfg.dropout)(h, deterministic=deterministic)
      if cfg.pre_norm:
        return x + dropped(norm(name)(x))
      return norm(name)(x + dropped(x))

    def attention(name, rope, cross, window=0):
      return layers.Attention(
          cfg.num_heads, cfg.kv_heads, cfg.dim_per_head, cfg.use_bias, rope, out_std,
          cfg.init_std, dtype, cfg.scaled_attention, cross, cfg.attention,
          qkv_bias=cfg.qkv_bias, qk_norm_eps=cfg.norm_eps if cfg.qk_norm else None,
          scale_dim=cfg.query_scale_dim, window=window, softcap=cfg.attention_softcap,
          init=cfg.init, name=name)

    rope = cfg.rope
    position_bias = None if bias_table is None else functools.partial(
        layers.relative_position_bias, bias_table, bidirectional=not self.causal,
        max_distance=cfg.relative_max_distance)
    self_attention = attention('attention', rope, False, self.window)
    x = residual(lambda h: self_attention(h, h, mask, positions, decode=decode,
                                          position_bias=position_bias), 'attention_norm', x)
    if self.cross:
      cross_attention = attention('cross_attention', None, True)
      x = residual(lambda h: cross_attention(h, encoded, cross_mask, positions, decode=decode),
                   'cross_attention_norm', x)
    mlp = layers.Mlp(cfg.ff_dim, cfg.mlp, cfg.use_bias, cfg.init_std, out_std, dtype, cfg.init,
                     name='mlp')
    x = residual(mlp, 'mlp_norm', x)
    return nn.with_logical_constraint(x, ('batch', 'length', 'embed'))


class _ScannedBlock(nn.Module):
  """A block as an ``nn.scan`` body: the residual stream is the carry."""

  cfg: TransformerConfig
  cross: bool
  causal: bool

  @nn.compact
  def __call__(self, x, mask, positions, bias_table, encoded, cross_mask, deterministic, decode):
    block = _remat(self.cfg)(self.cfg, self.cross, self.causal, self.cfg.sliding_window,
                             name=paths.SCANNED_BLOCK)
    return block(x, mask, positions, bias_table, encoded, cross_mask, deterministic, decode), None


def _remat(cfg: TransformerConfig):
  """Block, or Block under ``nn.remat`` with the configured policy (flags static)."""
  if cfg.remat == 'none':
    return Block
  # flax counts ``self`` as argument 0 (and mishandles negative indices): the flags are 7, 8
  return nn.remat(Block, policy=REMAT_POLICIES[cfg.remat], static_argnums=(7, 8),
                  prevent_cse=not cfg.scan_layers)


class Stack(nn.Module):
  """An encoder or a decoder over embedded tokens: position and token-type embeddings, blocks,
  and the final norm of pre-norm models.

  Masks come from segment ids (0 marks padding, so an unpacked row passes its attention mask):
  a query attends keys of its own segment, before it when ``causal``. Cross-attention (a
  decoder with ``cross``) attends the encoder's non-padding keys, of the query's segment when
  both sides carry segment ids. T5's relative-bias table is one per stack, shared by its blocks.
  """

  cfg: TransformerConfig
  num_layers: int
  causal: bool
  cross: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, positions: jax.Array, segment_ids: jax.Array | None = None,
               *, token_types: jax.Array | None = None, encoded: jax.Array | None = None,
               encoder_segment_ids: jax.Array | None = None, deterministic: bool = True,
               decode: bool = False) -> jax.Array:
    cfg = self.cfg
    dtype = cfg.compute_dtype
    if cfg.type_vocab_size:
      types = self.param('type_embedding', nn.with_logical_partitioning(
          layers.normal(cfg.init_std), (None, 'embed')), (cfg.type_vocab_size, cfg.d_model),
                         jnp.float32)
      token_types = jnp.zeros_like(positions) if token_types is None else token_types
      x = x + _lookup(types, token_types).astype(dtype)
    if cfg.positions == 'learned':
      table = self.param('pos_embedding', nn.with_logical_partitioning(
          layers.normal(cfg.init_std), (None, 'embed')), (cfg.max_len, cfg.d_model), jnp.float32)
      x = x + _lookup(table, positions + cfg.position_offset).astype(dtype)
    elif cfg.positions == 'sinusoidal':
      x = x + layers.sinusoidal_positions(positions, cfg.d_model).astype(dtype)
    if cfg.embed_norm:
      x = layers.make_norm(cfg.norm, cfg.norm_eps, cfg.use_bias, dtype, 'embed_norm')(x)
    x = nn.Dropout(cfg.dropout)(x, deterministic=deterministic)
    x = nn.with_logical_constraint(x, ('batch', 'length', 'embed'))

    bias_table = None
    if cfg.positions == 'relative':
      bias_table = self.param('relative_bias', nn.with_logical_partitioning(
          layers.normal(cfg.init_std), (None, 'heads')), (cfg.relative_buckets, cfg.num_heads),
                              jnp.float32)
    mask = None
    if not decode:  # in decode mode each self-attention layer masks against its own cache
      mask = layers.attention_mask(None, None, self.causal, segment_ids, segment_ids,
                                   positions, positions)
    cross_mask = None
    if self.cross:
      encoder_valid = None if encoder_segment_ids is None else encoder_segment_ids != 0
      cross_mask = layers.attention_mask(None, encoder_valid, False, segment_ids,
                                         encoder_segment_ids)
    args = (mask, positions, bias_table, encoded, cross_mask, deterministic, decode)
    if cfg.scan_layers:
      blocks = nn.scan(_ScannedBlock, variable_axes={'params': 0, 'cache': 0},
                       split_rngs={'params': True, 'dropout': True},
                       in_axes=(nn.broadcast,) * len(args), length=self.num_layers,
                       metadata_params={nn.PARTITION_NAME: 'layers'})
      x, _ = blocks(cfg, self.cross, self.causal, name=paths.SCANNED)(x, *args)
    else:
      for i in range(self.num_layers):
        x = _remat(cfg)(cfg, self.cross, self.causal, cfg.window(i),
                        name=paths.block(i))(x, *args)
    if cfg.pre_norm:
      x = layers.make_norm(cfg.norm, cfg.norm_eps, cfg.use_bias, dtype, 'final_norm')(x)
    return x


def _lookup(table: jax.Array, ids: jax.Array) -> jax.Array:
  """Rows of a small table, gathered from a replicated copy: a gather from an embed-sharded
  table rematerializes all of it anyway (DESIGN pitfall 5)."""
  return jnp.take(nn.with_logical_constraint(table, (None, None)), ids, axis=0)


def default_positions(tokens: jax.Array, positions: jax.Array | None) -> jax.Array:
  """``0..length-1`` in every row unless given (packed rows restart them per document)."""
  if positions is None:
    return jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
  return positions


def make_lm_head(cfg: TransformerConfig, name: str | None) -> layers.Dense | None:
  """The untied output projection; None when the token table is reused (tied)."""
  if cfg.tie_embeddings:
    return None
  return layers.Dense((cfg.vocab_size,), ('embed',), ('vocab',), False,
                      cfg.kernel_init, cfg.compute_dtype, name=name)


def output_logits(cfg: TransformerConfig, x: jax.Array, embed: layers.Embed,
                  lm_head: layers.Dense | None) -> jax.Array:
  """Float32 logits from final states, through the tied table or ``lm_head``."""
  if cfg.rescale_logits:
    x = x * cfg.d_model ** -0.5
  logits = (embed.attend(x) if lm_head is None else lm_head(x)).astype(jnp.float32)
  if cfg.logit_softcap:
    logits = cfg.logit_softcap * jnp.tanh(logits / cfg.logit_softcap)
  return logits


class DecoderLM(nn.Module):
  """A decoder-only language model (GPT-2, LLaMA-style) returning float32 logits.

  ``positions`` default to ``0..length-1``; packed rows pass per-document positions and
  ``segment_ids`` so attention never crosses a document boundary. ``lora`` adapts the
  projections it targets (instruction tuning with adapters).
  """

  cfg: TransformerConfig
  lora: lora_lib.LoraConfig | None = None

  @nn.compact
  def __call__(self, tokens: jax.Array, positions: jax.Array | None = None,
               segment_ids: jax.Array | None = None, *, deterministic: bool = True,
               decode: bool = False) -> jax.Array:
    cfg = self.cfg
    positions = default_positions(tokens, positions)
    with lora_lib.enabled(self.lora, deterministic):
      embed = layers.Embed(cfg.vocab_size, cfg.d_model, cfg.init_std, cfg.compute_dtype,
                           name='embed')
      x = embed(tokens)
      if cfg.embed_scale:  # in the compute dtype, as Gemma's normalizer
        x = x * jnp.asarray(math.sqrt(cfg.d_model), cfg.compute_dtype)
      x = Stack(cfg, cfg.num_layers, causal=True, name='decoder')(
          x, positions, segment_ids, deterministic=deterministic, decode=decode)
      return output_logits(cfg, x, embed, make_lm_head(cfg, 'lm_head'))
