"""The encoder-decoder family (T5 v1.0 and v1.1): two stacks sharing one token table.

``encode`` and ``decode`` are separate so that generation runs the encoder once and then only
the decoder, whose cross-attention keys and values are cached after the first decode call.
"""

from __future__ import annotations

import flax.linen as nn
import jax

from llm_jax.models import layers
from llm_jax.models.transformer import (
  Stack,
  TransformerConfig,
  default_positions,
  make_lm_head,
  output_logits,
)


class EncoderDecoderLM(nn.Module):
  """T5-style model returning float32 decoder logits.

  Padding is ``segment_ids == 0`` on either side (an unpacked row passes its attention mask);
  packed rows (t5x style) pass matching segment ids on both sides and per-document positions.
  """

  cfg: TransformerConfig

  def setup(self):
    cfg = self.cfg
    self.embed = layers.Embed(cfg.vocab_size, cfg.d_model, cfg.init_std, cfg.compute_dtype)
    self.encoder = Stack(cfg, cfg.num_layers, causal=False)
    self.decoder = Stack(cfg, cfg.decoder_layers, causal=True, cross=True)
    self.lm_head = make_lm_head(cfg, None)

  def encode(self, tokens: jax.Array, positions: jax.Array | None = None,
             segment_ids: jax.Array | None = None, *, deterministic: bool = True) -> jax.Array:
    """The encoder's final states ``[batch, length, d_model]``."""
    positions = default_positions(tokens, positions)
    return self.encoder(self.embed(tokens), positions, segment_ids,
                        deterministic=deterministic)

  def decode(self, tokens: jax.Array, encoded: jax.Array | None,
             encoder_segment_ids: jax.Array | None = None, positions: jax.Array | None = None,
             segment_ids: jax.Array | None = None, *, deterministic: bool = True,
             decode: bool = False) -> jax.Array:
    """Logits for decoder ``tokens`` attending ``encoded``.

    In ``decode`` mode the first call stores the cross-attention keys and values of
    ``encoded`` in the cache; later calls pass ``encoded=None`` (and the same
    ``encoder_segment_ids``, which mask its padding).
    """
    positions = default_positions(tokens, positions)
    x = self.decoder(self.embed(tokens), positions, segment_ids, encoded=encoded,
                     encoder_segment_ids=encoder_segment_ids, deterministic=deterministic,
                     decode=decode)
    return output_logits(self.cfg, x, self.embed, self.lm_head)

  def __call__(self, encoder_tokens: jax.Array, decoder_tokens: jax.Array,
               encoder_segment_ids: jax.Array | None = None,
               decoder_segment_ids: jax.Array | None = None,
               encoder_positions: jax.Array | None = None,
               decoder_positions: jax.Array | None = None, *, deterministic: bool = True,
               decode: bool = False) -> jax.Array:
    encoded = self.encode(encoder_tokens, encoder_positions, encoder_segment_ids,
                          deterministic=deterministic)
    return self.decode(decoder_tokens, encoded, encoder_segment_ids, decoder_positions,
                       decoder_segment_ids, deterministic=deterministic, decode=decode)
