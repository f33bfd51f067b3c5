"""LLaMA (``LlamaForCausalLM``): RMSNorm pre-norm, rotary positions, SwiGLU, grouped-query heads.

Hugging Face's q/k projections are already in the half-split rotary layout our RoPE uses, so
they map without permutation. ``rope_scaling`` of the kinds Llama 3.x and long-context
checkpoints use (``llama3``, ``linear``, ``yarn``) maps onto ``model.rope_*``; ``dynamic``
NTK is refused: Hugging Face recomputes its frequencies from the longest sequence seen so far,
so a cached decode could not equal the full forward, and others (``longrope``) are refused by
name. The other decoder families (Qwen, Mistral, Gemma) start from this module's rules.
"""

from __future__ import annotations

import math

from llm_jax.convert import rules as r
from llm_jax.convert.family import Family, require
from llm_jax.models import TransformerConfig, paths

# Hugging Face rope_parameters key -> TransformerConfig field, per scaling kind
ROPE_FIELDS = {
    'linear': {'factor': 'rope_factor'},
    'llama3': {'factor': 'rope_factor', 'original_max_position_embeddings':
               'rope_original_max_len', 'low_freq_factor': 'rope_low_freq_factor',
               'high_freq_factor': 'rope_high_freq_factor'},
    'yarn': {'factor': 'rope_factor', 'original_max_position_embeddings':
             'rope_original_max_len', 'beta_fast': 'rope_beta_fast',
             'beta_slow': 'rope_beta_slow', 'attention_factor': 'rope_attention_factor'},
}
ROPE_REFUSED = {
    'dynamic': 'Hugging Face rescales it from the longest sequence seen so far, so cached '
               'decoding would not equal the full forward',
}


def rope_from_hf(hf: dict, problems: list[str]) -> dict:
  """The ``model.rope_*`` fields of a config: transformers 5 writes ``rope_parameters``, older
  configs ``rope_theta`` and ``rope_scaling``; what cannot be expressed goes to ``problems``."""
  params = {**(hf.get('rope_scaling') or {}), **(hf.get('rope_parameters') or {})}
  theta = params.get('rope_theta', hf.get('rope_theta', 10000.0))
  kind = params.get('rope_type') or params.get('type') or 'default'
  fields = {'rope_theta': float(theta)}
  if kind == 'default':
    return fields
  if kind not in ROPE_FIELDS:
    why = ROPE_REFUSED.get(kind, 'llm_jax has ' + ', '.join(ROPE_FIELDS))
    problems.append(f'rope type {kind!r} is not supported ({why})')
    return fields
  if params.get('partial_rotary_factor', 1.0) != 1.0:
    problems.append('partial_rotary_factor is not supported (rotary positions on every dim)')
  if kind == 'yarn' and params.get('truncate', True) is False:
    problems.append('yarn with truncate=false is not supported')
  if kind == 'yarn' and params.get('mscale') and params.get('mscale_all_dim') and \
      not params.get('attention_factor'):
    factor = params['factor']
    params['attention_factor'] = ((0.1 * params['mscale'] * math.log(factor) + 1.0) /
                                  (0.1 * params['mscale_all_dim'] * math.log(factor) + 1.0))
  fields['rope_scaling'] = kind
  for key, field in ROPE_FIELDS[kind].items():
    if params.get(key) is not None:
      fields[field] = type(getattr(TransformerConfig(1), field))(params[key])
  return fields


def rope_to_hf(cfg: TransformerConfig) -> dict:
  out = {'rope_type': 'default' if cfg.rope_scaling == 'none' else cfg.rope_scaling,
         'rope_theta': cfg.rope_theta}
  for key, field in ROPE_FIELDS.get(cfg.rope_scaling, {}).items():
    if field != 'rope_attention_factor' or cfg.rope_attention_factor:
      out[key] = getattr(cfg, field)
  return out


def config_from_hf(hf: dict, names: frozenset, where: str = 'llama config.json',
                   problems: list[str] | None = None, **fields) -> TransformerConfig:
  """LLaMA's reading of a config.json, which the other decoder families extend: their own
  ``problems`` and ``fields`` (over LLaMA's) come in, and every problem is reported at once."""
  problems = list(problems or [])
  rope = rope_from_hf(hf, problems)
  if hf.get('hidden_act', 'silu') != 'silu':
    problems.append(f'hidden_act={hf["hidden_act"]!r} is not supported (only silu: SwiGLU)')
  if bool(hf.get('attention_bias')) != bool(hf.get('mlp_bias')):
    problems.append('attention_bias and mlp_bias differ; llm_jax has one use_bias for both')
  require(problems, where)
  heads = hf['num_attention_heads']
  base = dict(
      vocab_size=hf['vocab_size'], kind='decoder', d_model=hf['hidden_size'], num_heads=heads,
      num_kv_heads=hf.get('num_key_value_heads') or heads,
      head_dim=hf.get('head_dim') or hf['hidden_size'] // heads,
      num_layers=hf['num_hidden_layers'], d_ff=hf['intermediate_size'],
      max_len=hf['max_position_embeddings'], dropout=0.0, norm='rmsnorm',
      norm_eps=hf.get('rms_norm_eps', 1e-6), pre_norm=True, positions='rope', mlp='swiglu',
      use_bias=bool(hf.get('attention_bias')),
      tie_embeddings='lm_head.weight' not in names, init_std=hf.get('initializer_range', 0.02))
  return TransformerConfig(**{**base, **rope, **fields})


def config_to_hf(cfg: TransformerConfig) -> dict:
  return {
      'architectures': ['LlamaForCausalLM'], 'model_type': 'llama',
      'vocab_size': cfg.vocab_size, 'hidden_size': cfg.d_model,
      'num_attention_heads': cfg.num_heads, 'num_key_value_heads': cfg.kv_heads,
      'head_dim': cfg.dim_per_head, 'num_hidden_layers': cfg.num_layers,
      'intermediate_size': cfg.ff_dim, 'max_position_embeddings': cfg.max_len,
      'rms_norm_eps': cfg.norm_eps, 'hidden_act': 'silu', 'rope_parameters': rope_to_hf(cfg),
      'attention_bias': cfg.use_bias, 'mlp_bias': cfg.use_bias,
      'tie_word_embeddings': cfg.tie_embeddings, 'initializer_range': cfg.init_std}


def tensor_rules(cfg: TransformerConfig) -> list[r.Rule]:
  out = [r.copy('model.embed_tokens.weight', 'embed/embedding'),
         r.copy('model.norm.weight', 'decoder/final_norm/scale')]
  for i in range(cfg.num_layers):
    h, b = f'model.layers.{i}.', f'decoder/{paths.block(i)}/'
    out += [r.copy(h + 'input_layernorm.weight', b + 'attention_norm/scale'),
            r.copy(h + 'post_attention_layernorm.weight', b + 'mlp_norm/scale')]
    for hf, ours, n_in in (('q_proj', 'query', 1), ('k_proj', 'key', 1),
                           ('v_proj', 'value', 1), ('o_proj', 'out', 2)):
      out.append(r.linear(f'{h}self_attn.{hf}.weight', f'{b}attention/{ours}/kernel', n_in))
      if cfg.use_bias or (cfg.qkv_bias and ours != 'out'):
        rule = r.copy if ours == 'out' else r.flat
        out.append(rule(f'{h}self_attn.{hf}.bias', f'{b}attention/{ours}/bias'))
    for hf, ours in (('gate_proj', 'wi'), ('up_proj', 'wi_gate'), ('down_proj', 'wo')):
      out.append(r.linear(f'{h}mlp.{hf}.weight', f'{b}mlp/{ours}/kernel'))
      if cfg.use_bias:
        out.append(r.copy(f'{h}mlp.{hf}.bias', f'{b}mlp/{ours}/bias'))
  if not cfg.tie_embeddings:
    out.append(r.linear('lm_head.weight', 'lm_head/kernel'))
  return out


FAMILY = Family(
    model_type='llama', prefix='model.', base_architecture='LlamaModel', heads=('lm_head.',),
    config_from_hf=config_from_hf, config_to_hf=config_to_hf, rules=tensor_rules,
    duplicates={'lm_head.weight': 'model.embed_tokens.weight'},
    # rotary frequency buffers that checkpoints of older transformers carry
    dropped=('model.rotary_emb.inv_freq', 'model.layers.*.self_attn.rotary_emb.inv_freq'))
