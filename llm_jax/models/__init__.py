"""Flax Linen models: one configurable Transformer and its heads."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from llm_jax.models.encoder import EncoderLM
from llm_jax.models.encoder_decoder import EncoderDecoderLM
from llm_jax.models.transformer import DecoderLM, TransformerConfig

MODELS = {'decoder': DecoderLM, 'encoder': EncoderLM, 'encoder_decoder': EncoderDecoderLM}


def build(cfg: TransformerConfig) -> nn.Module:
  """The model of ``cfg.kind``."""
  return MODELS[cfg.kind](cfg)


def sample_inputs(cfg: TransformerConfig, batch: int = 1, length: int = 8) -> tuple:
  """Positional arguments for ``build(cfg).init``: token ids (twice for encoder-decoders, one
  row of inputs and one of decoder tokens). No parameter's shape depends on ``length``."""
  tokens = jnp.zeros((batch, length), jnp.int32)
  return (tokens, tokens) if cfg.kind == 'encoder_decoder' else (tokens,)


__all__ = ['DecoderLM', 'EncoderDecoderLM', 'EncoderLM', 'TransformerConfig', 'build',
           'sample_inputs']
