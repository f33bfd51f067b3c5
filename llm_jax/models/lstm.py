"""The classic non-Transformer baseline: embedding, stacked LSTMs, one sigmoid unit.

The Keras sentiment tutorials train ``Embedding -> LSTM -> LSTM -> Dense(1, sigmoid)`` for binary
sentiment. ``LSTMClassifier`` is that model as a classifier of this codebase: called as
``SequenceClassifier`` is and returning what it returns, so the classification task, its
metrics and ``predict`` serve it unchanged. ``model.kind='lstm'`` selects it; of the model
section only ``d_model`` (the embedding width), ``num_layers``, ``lstm_hidden``, ``dropout``
(between LSTM layers), ``init_std`` and ``dtype`` apply.
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


def hidden_sizes(cfg: TransformerConfig) -> tuple[int, ...]:
  """Each layer's hidden size, bottom up: ``lstm_hidden``, else ``d_model`` throughout."""
  return tuple(cfg.lstm_hidden) or (cfg.d_model,) * cfg.num_layers


def errors(cfg: TransformerConfig, pooling: str, lora: bool) -> list[str]:
  """What an LSTM classifier cannot be built with, one message each: Transformer options,
  layer sizes that disagree, a pooling other than its last state, LoRA."""
  out = [f'model.{f.name}={getattr(cfg, f.name)!r} means nothing for kind="lstm" (no '
         'attention, positions or norms): leave it at its default'
         for f in dataclasses.fields(cfg)
         if f.name not in FIELDS and getattr(cfg, f.name) != f.default]
  if cfg.lstm_hidden and len(cfg.lstm_hidden) != cfg.num_layers:
    out.append(f'model.lstm_hidden={tuple(cfg.lstm_hidden)} sizes {len(cfg.lstm_hidden)} '
               f'layers but model.num_layers={cfg.num_layers}: make them agree')
  if any(size <= 0 for size in cfg.lstm_hidden):
    out.append(f'model.lstm_hidden={tuple(cfg.lstm_hidden)}: sizes must be positive')
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
