"""Qwen2 / Qwen2.5 (``Qwen2ForCausalLM``): LLaMA's decoder with biases on the query, key and
value projections alone (``model.qkv_bias``), the same tensor names otherwise.

Sliding-window attention (``use_sliding_window``) is refused by name: the released Qwen2.5
checkpoints ship with it off.
"""

from __future__ import annotations

import dataclasses

from llm_jax.convert import llama
from llm_jax.models import TransformerConfig


def config_from_hf(hf: dict, names: frozenset) -> TransformerConfig:
  problems = ['use_sliding_window=true is not supported (full attention only)'
              ] if hf.get('use_sliding_window') else []
  return llama.config_from_hf({**hf, 'attention_bias': False, 'mlp_bias': False}, names,
                              'qwen2 config.json', problems, qkv_bias=True)


def config_to_hf(cfg: TransformerConfig) -> dict:
  out = llama.config_to_hf(cfg)
  for key in ('attention_bias', 'mlp_bias'):  # Qwen2's biases are fixed by the family
    out.pop(key)
  return {**out, 'architectures': ['Qwen2ForCausalLM'], 'model_type': 'qwen2',
          'use_sliding_window': False}


FAMILY = dataclasses.replace(llama.FAMILY, model_type='qwen2', base_architecture='Qwen2Model',
                             config_from_hf=config_from_hf, config_to_hf=config_to_hf)
