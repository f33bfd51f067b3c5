"""The encoder family (BERT, RoBERTa): a bidirectional stack with a masked-LM head and a pooler.

``__call__`` gives masked-LM logits (what pretraining needs). ``encode`` gives the final hidden
states, for mean-pooled sentence embeddings or a token-level head, and ``pool`` turns them into
BERT's pooled vector (dense + tanh on the first, ``[CLS]``, token) for a classification head.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from llm_jax.models import layers
from llm_jax.models.transformer import (
  Stack,
  TransformerConfig,
  default_positions,
  make_lm_head,
  output_logits,
)


class EncoderLM(nn.Module):
  """BERT-style encoder; padding is ``segment_ids == 0`` (pass the attention mask)."""

  cfg: TransformerConfig

  def setup(self):
    cfg = self.cfg
    dtype = cfg.compute_dtype
    self.embed = layers.Embed(cfg.vocab_size, cfg.d_model, cfg.init_std, dtype)
    self.encoder = Stack(cfg, cfg.num_layers, causal=False)
    if cfg.pooler:
      self.pooler = layers.Dense((cfg.d_model,), ('embed',), (None,), True,
                                 cfg.kernel_init, dtype)
    if cfg.nsp_head:  # BertForPreTraining's seq_relationship: IsNext (0) or NotNext (1)
      self.nsp = layers.Dense((2,), ('embed',), (None,), True, cfg.kernel_init,
                              dtype)
    if cfg.mlm_head:
      # BERT's prediction head: transform (dense, activation, norm), then the token table
      self.mlm_transform = layers.Dense((cfg.d_model,), ('embed',), (None,), True,
                                        cfg.kernel_init, dtype)
      self.mlm_norm = layers.make_norm(cfg.norm, cfg.norm_eps, cfg.use_bias, dtype, None)
      self.mlm_bias = self.param('mlm_bias', nn.with_logical_partitioning(
          nn.initializers.zeros, ('vocab',)), (cfg.vocab_size,), jnp.float32)
      self.lm_head = make_lm_head(cfg, None)

  def encode(self, tokens: jax.Array, positions: jax.Array | None = None,
             segment_ids: jax.Array | None = None, *, token_types: jax.Array | None = None,
             deterministic: bool = True) -> jax.Array:
    """The final hidden states ``[batch, length, d_model]``."""
    positions = default_positions(tokens, positions)
    return self.encoder(self.embed(tokens), positions, segment_ids, token_types=token_types,
                        deterministic=deterministic)

  def pool(self, hidden: jax.Array) -> jax.Array:
    """BERT's pooled ``[batch, d_model]`` vector from ``encode``'s output."""
    return jnp.tanh(self.pooler(hidden[:, 0]))

  def __call__(self, tokens: jax.Array, positions: jax.Array | None = None,
               segment_ids: jax.Array | None = None, *, token_types: jax.Array | None = None,
               deterministic: bool = True, predict_at: jax.Array | None = None) -> jax.Array:
    """Masked-LM logits ``[batch, length, vocab]`` in float32; a bare encoder (no
    ``mlm_head``, Hugging Face's ``BertModel``) returns ``encode``'s hidden states.

    ``predict_at[batch, k]`` (positions) gives the logits ``[batch, k, vocab]`` at those
    positions only: the vocabulary-wide head is most of a small model's cost, and pretraining
    reads it only where tokens were masked.
    """
    cfg = self.cfg
    x = self.encode(tokens, positions, segment_ids, token_types=token_types,
                    deterministic=deterministic)
    if cfg.pooler and self.is_initializing():
      self.next_sentence(x)  # only NSP and classification heads pool: create them here
    if not cfg.mlm_head:
      return x
    return self.mlm_logits(x, predict_at)

  def mlm_logits(self, hidden: jax.Array, predict_at: jax.Array | None = None) -> jax.Array:
    cfg = self.cfg
    if predict_at is not None:
      hidden = jnp.take_along_axis(hidden, predict_at[..., None], axis=1)
    x = self.mlm_norm(layers.ACTIVATIONS[cfg.mlp][0](self.mlm_transform(hidden)))
    return output_logits(cfg, x, self.embed, self.lm_head) + self.mlm_bias

  def next_sentence(self, hidden: jax.Array) -> jax.Array | None:
    """Float32 NSP logits ``[batch, 2]`` (IsNext, NotNext) from ``encode``'s output; None
    without ``nsp_head`` (the pooled vector is then only made)."""
    pooled = self.pool(hidden)
    return self.nsp(pooled).astype(jnp.float32) if self.cfg.nsp_head else None

  def pretrain(self, tokens: jax.Array, positions: jax.Array | None = None,
               segment_ids: jax.Array | None = None, *, token_types: jax.Array | None = None,
               deterministic: bool = True,
               predict_at: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """BERT's two pretraining heads from one pass: masked-LM logits (at ``predict_at``) and
    NSP logits, as ``BertForPreTraining`` returns them."""
    x = self.encode(tokens, positions, segment_ids, token_types=token_types,
                    deterministic=deterministic)
    return self.mlm_logits(x, predict_at), self.next_sentence(x)
