"""Mistral (``MistralForCausalLM``): LLaMA's decoder and tensor names, with sliding-window
attention where ``sliding_window`` is set (Mistral 7B v0.1: 4096; later releases: null).

The window masks keys by position; the KV cache stays as long as the sequence rather than
rolling, so decoding equals the full forward at any length.
"""

from __future__ import annotations

import dataclasses

from llm_jax.convert import llama
from llm_jax.models import TransformerConfig


def config_from_hf(hf: dict, names: frozenset) -> TransformerConfig:
  return llama.config_from_hf({**hf, 'attention_bias': False, 'mlp_bias': False}, names,
                              'mistral config.json', sliding_window=hf.get('sliding_window') or 0)


def config_to_hf(cfg: TransformerConfig) -> dict:
  out = llama.config_to_hf(cfg)
  for key in ('attention_bias', 'mlp_bias'):  # Mistral has no biases
    out.pop(key)
  return {**out, 'architectures': ['MistralForCausalLM'], 'model_type': 'mistral',
          'sliding_window': cfg.sliding_window or None}


FAMILY = dataclasses.replace(llama.FAMILY, model_type='mistral',
                             base_architecture='MistralModel', config_from_hf=config_from_hf,
                             config_to_hf=config_to_hf)
