"""Qwen3 (``Qwen3ForCausalLM``): LLaMA's decoder with an RMSNorm over each head's query and
key before the rotary positions (``model.qk_norm``), and ``head_dim`` set on its own rather
than ``hidden_size / heads``.

Sliding-window attention (``use_sliding_window``) and ``attention_bias`` (which Qwen3 puts on
the output projection too) are refused by name.
"""

from __future__ import annotations

import dataclasses

from llm_jax.convert import llama
from llm_jax.convert import rules as r
from llm_jax.convert.family import ConversionError
from llm_jax.models import TransformerConfig, paths


def config_from_hf(hf: dict, names: frozenset) -> TransformerConfig:
  where = 'qwen3 config.json'
  problems = []
  if hf.get('use_sliding_window'):
    problems.append('use_sliding_window=true is not supported (full attention only)')
  if hf.get('attention_bias'):  # biases on q, k, v and o but not the MLP: no llm_jax field
    problems.append('attention_bias=true is not supported (released Qwen3 has none)')
  return llama.config_from_hf({**hf, 'mlp_bias': False}, names, where, problems,
                              qk_norm=True)


def config_to_hf(cfg: TransformerConfig) -> dict:
  if cfg.use_bias or cfg.qkv_bias:
    raise ConversionError('a model with query/key norms and biases has no Hugging Face '
                          'family; set model.use_bias and model.qkv_bias to false')
  out = llama.config_to_hf(cfg)
  out.pop('mlp_bias')
  return {**out, 'architectures': ['Qwen3ForCausalLM'], 'model_type': 'qwen3',
          'use_sliding_window': False}


def tensor_rules(cfg: TransformerConfig) -> list[r.Rule]:
  out = llama.tensor_rules(cfg)
  for i in range(cfg.num_layers):
    h, b = f'model.layers.{i}.self_attn.', f'decoder/{paths.block(i)}/attention/'
    out += [r.copy(h + 'q_norm.weight', b + 'query_norm/scale'),
            r.copy(h + 'k_norm.weight', b + 'key_norm/scale')]
  return out


FAMILY = dataclasses.replace(llama.FAMILY, model_type='qwen3', base_architecture='Qwen3Model',
                             config_from_hf=config_from_hf, config_to_hf=config_to_hf,
                             rules=tensor_rules)
