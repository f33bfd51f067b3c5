"""The classic non-Transformer baselines: stacked LSTMs as a classifier and as a language model.

The Keras sentiment tutorials train ``Embedding -> LSTM -> LSTM -> Dense(1, sigmoid)`` for binary
sentiment. ``LSTMClassifier`` is that model as a classifier of this codebase: called as
``SequenceClassifier`` is and returning what it returns, so the classification task, its
metrics and ``predict`` serve it unchanged. ``model.kind='lstm'`` selects it; of the model
section only ``d_model`` (the embedding width), ``num_layers``, ``lstm_hidden``, ``dropout``
(between LSTM layers), ``init_std`` and ``dtype`` apply.

``LSTMLM`` is Zaremba, Sutskever and Vinyals' (2014) language model, which ``model.kind='lstm'``
trains under ``objective='causal_lm'`` on ``data.batching='streams'`` (truncated BPTT over
parallel streams, ``data/lm.py``): it takes the state the previous batch ended in and returns
the state this one ends in, so a stream's state runs on across batches.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from llm_jax.models import layers, paths
from llm_jax.models.transformer import TransformerConfig

# the model fields an LSTM reads; any other set away from its default is refused
FIELDS = ('vocab_size', 'kind', 'd_model', 'num_layers', 'lstm_hidden', 'dropout', 'init_std',
          'dtype')
# ... and a language model's: its initializer (the paper's uniform one) and whether the output
# layer reuses the embedding table (Press and Wolf 2017; the paper's is untied)
LM_FIELDS = FIELDS + ('init', 'init_scale', 'tie_embeddings')
Carry = tuple[tuple[jax.Array, jax.Array], ...]  # (c, h) of each layer, bottom up, [batch, hidden]


def hidden_sizes(cfg: TransformerConfig) -> tuple[int, ...]:
  """Each layer's hidden size, bottom up: ``lstm_hidden``, else ``d_model`` throughout."""
  return tuple(cfg.lstm_hidden) or (cfg.d_model,) * cfg.num_layers


def _shape_errors(cfg: TransformerConfig, fields: tuple[str, ...], what: str) -> list[str]:
  out = [f'model.{f.name}={getattr(cfg, f.name)!r} means nothing for {what} (no '
         'attention, positions or norms): leave it at its default'
         for f in dataclasses.fields(cfg)
         if f.name not in fields and getattr(cfg, f.name) != f.default]
  if cfg.lstm_hidden and len(cfg.lstm_hidden) != cfg.num_layers:
    out.append(f'model.lstm_hidden={tuple(cfg.lstm_hidden)} sizes {len(cfg.lstm_hidden)} '
               f'layers but model.num_layers={cfg.num_layers}: make them agree')
  if any(size <= 0 for size in cfg.lstm_hidden):
    out.append(f'model.lstm_hidden={tuple(cfg.lstm_hidden)}: sizes must be positive')
  return out


def lm_errors(cfg: TransformerConfig) -> list[str]:
  """What an LSTM language model cannot be built with: Transformer options, layer sizes that
  disagree, a tied output layer whose top layer is not the embedding's width."""
  out = _shape_errors(cfg, LM_FIELDS, 'an LSTM language model')
  if cfg.tie_embeddings and hidden_sizes(cfg)[-1] != cfg.d_model:
    out.append(f'model.tie_embeddings=True reuses the {cfg.d_model}-wide embedding as the output '
               f'layer, but the top LSTM layer is {hidden_sizes(cfg)[-1]} wide: set '
               'model.tie_embeddings=False or make them agree')
  return out


def errors(cfg: TransformerConfig, pooling: str, lora: bool) -> list[str]:
  """What an LSTM classifier cannot be built with, one message each: Transformer options,
  layer sizes that disagree, a pooling other than its last state, LoRA."""
  out = _shape_errors(cfg, FIELDS, 'kind="lstm" classifiers')
  if pooling != 'last':
    out.append(f'finetune.pooling={pooling!r}: an LSTM classifier reads its last state; '
               'set finetune.pooling="last"')
  if lora:
    out.append('LoRA adapts a Transformer\'s projections and kind="lstm" has none: set '
               'finetune.lora_rank=0 and a freeze spec other than "lora"')
  return out


def _replicated(init: layers.Initializer, ndim: int) -> layers.Initializer:
  """LSTM weights stay whole on every device: the recurrence is a scan of small matmuls, and
  a sharded hidden axis would cost a collective per time step for no memory worth saving."""
  return nn.with_logical_partitioning(init, (None,) * ndim)


class LSTMClassifier(nn.Module):
  """Float32 logits from the last layer's final state, the one at each row's last token.

  ``segment_ids`` is the attention mask (0 on padding, which ends a row as classification
  batches pad it): padding embeds to zero and, as ``seq_lengths``, stops every layer's
  recurrence, so appending padding never changes a row's logits. A row with no token keeps
  the initial (zero) state. ``positions`` and ``token_types`` are accepted and unused: the
  recurrence reads order by itself.

  Binary tasks (``num_labels=2``) end, as that Keras model does, in one dense unit ``z``
  whose sigmoid is the probability of label 1. The classification objective is a softmax
  over classes, so the model returns the logits ``[0, z]``: ``softmax([0, z])[1] =
  sigmoid(z)``, and their cross-entropy is Keras' binary cross-entropy. More labels: one
  logit each; one label: the regression value, as ``SequenceClassifier`` returns it.
  """

  cfg: TransformerConfig
  num_labels: int
  head_dropout: float = 0.1

  @nn.compact
  def __call__(self, tokens: jax.Array, positions: jax.Array | None = None,
               segment_ids: jax.Array | None = None, *, token_types: jax.Array | None = None,
               deterministic: bool = True) -> jax.Array:
    del positions, token_types
    cfg = self.cfg
    dtype = cfg.compute_dtype
    valid = jnp.ones(tokens.shape, bool) if segment_ids is None else segment_ids != 0
    lengths = valid.sum(axis=1)
    x = layers.Embed(cfg.vocab_size, cfg.d_model, cfg.init_std, dtype, name='embed')(tokens)
    x = x * valid[..., None].astype(x.dtype)
    for i, features in enumerate(hidden_sizes(cfg)):
      if i:
        x = nn.Dropout(cfg.dropout)(x, deterministic=deterministic)
      cell = nn.OptimizedLSTMCell(
          features, dtype=dtype, kernel_init=_replicated(nn.initializers.lecun_normal(), 2),
          recurrent_kernel_init=_replicated(nn.initializers.orthogonal(), 2),
          bias_init=_replicated(nn.initializers.zeros, 1), parent=None)
      # 'block_i', as a Transformer names its layers: top_k_layers and layer decay apply
      (_, state), x = nn.RNN(cell, return_carry=True, name=paths.block(i))(x, seq_lengths=lengths)
    state = jnp.where(lengths[:, None] > 0, state, 0.0)
    state = nn.Dropout(self.head_dropout)(state, deterministic=deterministic)
    outputs = 1 if self.num_labels == 2 else self.num_labels
    z = layers.Dense((outputs,), (None,), (None,), True, layers.normal(cfg.init_std), dtype,
                     name=paths.HEAD)(state).astype(jnp.float32)
    return jnp.concatenate([jnp.zeros_like(z), z], axis=-1) if self.num_labels == 2 else z


def zero_carry(cfg: TransformerConfig, batch: int) -> Carry:
  """The state every stream starts from (and is reset to at each epoch): zeros."""
  return tuple((jnp.zeros((batch, n), jnp.float32), jnp.zeros((batch, n), jnp.float32))
               for n in hidden_sizes(cfg))


class LSTMLayer(nn.Module):
  """One LSTM layer over a sequence, from a given state.

  The input projection of every time step is one matmul before the recurrence, which then
  only adds ``h @ kernel_h`` per step (inside a ``lax.scan``): on a CPU the per-step matmul of
  a whole ``[x, h]`` concatenation would be most of the work. Gates are PyTorch's ``nn.LSTM``
  order, ``i, f, g, o``; ``c' = f c + i g``, ``h' = o tanh(c')``, with one bias (TensorFlow's
  ``BasicLSTMCell`` with ``forget_bias=0``, as the paper's reference code sets it).
  """

  features: int
  kernel_init: layers.Initializer
  bias_init: layers.Initializer
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, carry: tuple[jax.Array, jax.Array]
               ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    n = self.features
    kernel_i = self.param('kernel_i', _replicated(self.kernel_init, 2), (x.shape[-1], 4 * n))
    kernel_h = self.param('kernel_h', _replicated(self.kernel_init, 2), (n, 4 * n))
    bias = self.param('bias', _replicated(self.bias_init, 1), (4 * n,))
    dtype = self.dtype
    projected = jnp.einsum('btd,dg->tbg', x.astype(dtype), kernel_i.astype(dtype),
                           preferred_element_type=jnp.float32) + bias

    def step(state, z):
      c, h = state
      z = z + jnp.dot(h.astype(dtype), kernel_h.astype(dtype),
                      preferred_element_type=jnp.float32)
      i, f, g, o = jnp.split(z, 4, axis=-1)
      c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
      h = jax.nn.sigmoid(o) * jnp.tanh(c)
      return (c, h), h

    carry, hs = jax.lax.scan(step, carry, projected)
    return hs.swapaxes(0, 1).astype(dtype), carry


class LSTMLM(nn.Module):
  """Embedding, stacked LSTM layers, a softmax over the vocabulary: float32 logits and the
  state the batch ends in.

  Dropout (``model.dropout``) is on the non-recurrent connections only, as the paper's
  regularization: the embedding's output, each layer's output (the next layer's input, and
  the top layer's into the softmax); never on ``h`` carried from step to step.
  ``model.init='uniform'`` draws every parameter, the embedding and biases included, from
  U(-init_scale, init_scale), as the paper's reference code does; any other init keeps
  N(0, init_std) tables, the named initializer's kernels and zero biases.
  """

  cfg: TransformerConfig

  @nn.compact
  def __call__(self, tokens: jax.Array, carry: Carry | None = None, *,
               deterministic: bool = True) -> tuple[jax.Array, Carry]:
    cfg = self.cfg
    dtype = cfg.compute_dtype
    if cfg.init == 'uniform':
      table_init = kernel_init = bias_init = layers.symmetric_uniform(cfg.init_scale)
    else:
      table_init, bias_init = layers.normal(cfg.init_std), nn.initializers.zeros
      kernel_init = cfg.kernel_init(1, 2)
    carry = zero_carry(cfg, tokens.shape[0]) if carry is None else carry
    embed = layers.Embed(cfg.vocab_size, cfg.d_model, cfg.init_std, dtype, table_init,
                         name='embed')
    x = nn.Dropout(cfg.dropout)(embed(tokens), deterministic=deterministic)
    ends = []
    for i, features in enumerate(hidden_sizes(cfg)):
      x, end = LSTMLayer(features, kernel_init, bias_init, dtype, name=paths.block(i))(
          x, carry[i])
      x = nn.Dropout(cfg.dropout)(x, deterministic=deterministic)
      ends.append(end)
    if cfg.tie_embeddings:
      logits = embed.attend(x)
    else:
      logits = layers.Dense((cfg.vocab_size,), ('embed',), ('vocab',), True, kernel_init, dtype,
                            bias_init, name='output')(x)
    return logits.astype(jnp.float32), tuple(ends)
