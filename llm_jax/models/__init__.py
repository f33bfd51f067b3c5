"""Flax Linen models: one configurable Transformer and its heads."""

from llm_jax.models.transformer import DecoderLM, TransformerConfig

__all__ = ['DecoderLM', 'TransformerConfig']
