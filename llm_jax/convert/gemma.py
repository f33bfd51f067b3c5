"""Gemma (``GemmaForCausalLM``) and Gemma 2 (``Gemma2ForCausalLM``): LLaMA's decoder with an
RMSNorm scaled by ``1 + w`` (``model.norm='rmsnorm_plus_one'``), token embeddings times
``sqrt(d_model)``, a GeGLU MLP (tanh GELU) and ``head_dim`` independent of the width.

Gemma 2 adds a norm after each branch (``model.sandwich_norm``: its ``post_attention_layernorm``
is that extra norm, and ``pre_feedforward_layernorm`` the MLP's input norm), tanh soft caps on
the attention scores and the logits, scores scaled by ``query_pre_attn_scalar``, and
alternating sliding-window and global layers (``layer_types``: ``model.global_every``).
"""

from __future__ import annotations

import dataclasses

from llm_jax.convert import llama
from llm_jax.convert import rules as r
from llm_jax.convert.family import ConversionError
from llm_jax.models import TransformerConfig, paths

TANH_GELU = ('gelu_pytorch_tanh', 'gelu')  # Hugging Face reads the legacy 'gelu' as the tanh one


def _common(hf: dict, names: frozenset, where: str, activation: str | None,
            problems: list[str], **fields) -> TransformerConfig:
  if activation not in TANH_GELU:
    problems.append(f'activation {activation!r} is not supported (only gelu_pytorch_tanh: '
                    'GeGLU)')
  if hf.get('attention_bias'):
    problems.append('attention_bias=true is not supported (released Gemma has none)')
  return llama.config_from_hf({**hf, 'hidden_act': 'silu', 'attention_bias': False,
                               'mlp_bias': False}, names, where, problems,
                              norm='rmsnorm_plus_one', mlp='geglu', embed_scale=True, **fields)


def gemma_from_hf(hf: dict, names: frozenset) -> TransformerConfig:
  return _common(hf, names, 'gemma config.json', hf.get('hidden_act', 'gelu_pytorch_tanh'), [])


def _windows(hf: dict, problems: list[str]) -> dict:
  """``layer_types`` as (sliding_window, global_every): layer i attends all when
  ``(i + 1) % global_every == 0``, within the window otherwise."""
  window = hf.get('sliding_window') or 0
  layers = hf['num_hidden_layers']
  types = hf.get('layer_types') or [
      'sliding_attention' if (i + 1) % 2 else 'full_attention' for i in range(layers)]
  local = [t == 'sliding_attention' for t in types]
  if not window or not any(local):
    return {}
  for every in range(1, layers + 2):
    if local == [bool((i + 1) % every) for i in range(layers)]:
      return {'sliding_window': window, 'global_every': 0 if every > layers else every}
  problems.append(f'layer_types={types} is not a repeating run of sliding layers ending in a '
                  'full one')
  return {}


def gemma2_from_hf(hf: dict, names: frozenset) -> TransformerConfig:
  problems = []
  windows = _windows(hf, problems)
  head_dim = hf.get('head_dim') or hf['hidden_size'] // hf['num_attention_heads']
  scalar = hf.get('query_pre_attn_scalar') or head_dim
  return _common(hf, names, 'gemma2 config.json', hf.get('hidden_activation'), problems,
                 sandwich_norm=True, query_scale_dim=0 if scalar == head_dim else int(scalar),
                 attention_softcap=float(hf.get('attn_logit_softcapping') or 0.0),
                 logit_softcap=float(hf.get('final_logit_softcapping') or 0.0), **windows)


def _to_hf(cfg: TransformerConfig, model_type: str, architecture: str) -> dict:
  if cfg.use_bias or cfg.qkv_bias or cfg.qk_norm:
    raise ConversionError(f'{model_type} has no biases and no query/key norms; set '
                          'model.use_bias, model.qkv_bias and model.qk_norm to false')
  out = llama.config_to_hf(cfg)
  for key in ('mlp_bias', 'hidden_act'):
    out.pop(key)
  return {**out, 'architectures': [architecture], 'model_type': model_type,
          'attention_bias': False}


def gemma_to_hf(cfg: TransformerConfig) -> dict:
  return {**_to_hf(cfg, 'gemma', 'GemmaForCausalLM'), 'hidden_act': 'gelu_pytorch_tanh'}


def gemma2_to_hf(cfg: TransformerConfig) -> dict:
  return {**_to_hf(cfg, 'gemma2', 'Gemma2ForCausalLM'),
          'hidden_activation': 'gelu_pytorch_tanh', 'hidden_act': 'gelu_pytorch_tanh',
          'query_pre_attn_scalar': cfg.query_scale_dim or cfg.dim_per_head,
          'attn_logit_softcapping': cfg.attention_softcap or None,
          'final_logit_softcapping': cfg.logit_softcap or None,
          'sliding_window': cfg.sliding_window or None,
          'layer_types': ['sliding_attention' if cfg.window(i) else 'full_attention'
                          for i in range(cfg.num_layers)]}


def gemma2_rules(cfg: TransformerConfig) -> list[r.Rule]:
  """LLaMA's, with the MLP's input norm renamed and the two branch-output norms added."""
  out = []
  for rule in llama.tensor_rules(cfg):
    if rule.hf.endswith('.post_attention_layernorm.weight'):
      rule = dataclasses.replace(rule, hf=rule.hf.replace('post_attention', 'pre_feedforward'))
    out.append(rule)
  for i in range(cfg.num_layers):
    h, b = f'model.layers.{i}.', f'decoder/{paths.block(i)}/'
    out += [r.copy(h + 'post_attention_layernorm.weight', b + 'post_attention_norm/scale'),
            r.copy(h + 'post_feedforward_layernorm.weight', b + 'post_mlp_norm/scale')]
  return out


GEMMA = dataclasses.replace(llama.FAMILY, model_type='gemma', base_architecture='GemmaModel',
                            config_from_hf=gemma_from_hf, config_to_hf=gemma_to_hf)
GEMMA2 = dataclasses.replace(llama.FAMILY, model_type='gemma2',
                             base_architecture='Gemma2Model', config_from_hf=gemma2_from_hf,
                             config_to_hf=gemma2_to_hf, rules=gemma2_rules)
