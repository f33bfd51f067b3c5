"""LLaMA (``LlamaForCausalLM``): RMSNorm pre-norm, rotary positions, SwiGLU, grouped-query heads.

Hugging Face's q/k projections are already in the half-split rotary layout our RoPE uses, so
they map without permutation. Scaled RoPE variants (``rope_scaling``: llama3, yarn, ...) are
refused rather than approximated.
"""

from __future__ import annotations

from llm_jax.convert import rules as r
from llm_jax.convert.family import Family, require
from llm_jax.models import TransformerConfig, paths


def _rope(hf: dict) -> tuple[float, str]:
  """(theta, rope type): transformers 5 writes ``rope_parameters``, older configs
  ``rope_theta`` and ``rope_scaling``."""
  params = hf.get('rope_parameters') or {}
  scaling = hf.get('rope_scaling') or {}
  theta = params.get('rope_theta', hf.get('rope_theta', 10000.0))
  kind = params.get('rope_type') or scaling.get('rope_type') or scaling.get('type')
  return theta, kind or 'default'


def config_from_hf(hf: dict, names: frozenset, where: str = 'llama config.json'
                   ) -> TransformerConfig:
  theta, rope_type = _rope(hf)
  problems = []
  if rope_type != 'default':
    problems.append(f'rope type {rope_type!r} is not supported (only the default rotary)')
  if hf.get('hidden_act', 'silu') != 'silu':
    problems.append(f'hidden_act={hf["hidden_act"]!r} is not supported (only silu: SwiGLU)')
  if bool(hf.get('attention_bias')) != bool(hf.get('mlp_bias')):
    problems.append('attention_bias and mlp_bias differ; llm_jax has one use_bias for both')
  require(problems, where)
  heads = hf['num_attention_heads']
  return TransformerConfig(
      vocab_size=hf['vocab_size'], kind='decoder', d_model=hf['hidden_size'], num_heads=heads,
      num_kv_heads=hf.get('num_key_value_heads') or heads,
      head_dim=hf.get('head_dim') or hf['hidden_size'] // heads,
      num_layers=hf['num_hidden_layers'], d_ff=hf['intermediate_size'],
      max_len=hf['max_position_embeddings'], dropout=0.0, norm='rmsnorm',
      norm_eps=hf.get('rms_norm_eps', 1e-6), pre_norm=True, positions='rope',
      rope_theta=float(theta), mlp='swiglu', use_bias=bool(hf.get('attention_bias')),
      tie_embeddings='lm_head.weight' not in names, init_std=hf.get('initializer_range', 0.02))


def config_to_hf(cfg: TransformerConfig) -> dict:
  return {
      'architectures': ['LlamaForCausalLM'], 'model_type': 'llama',
      'vocab_size': cfg.vocab_size, 'hidden_size': cfg.d_model,
      'num_attention_heads': cfg.num_heads, 'num_key_value_heads': cfg.kv_heads,
      'head_dim': cfg.dim_per_head, 'num_hidden_layers': cfg.num_layers,
      'intermediate_size': cfg.ff_dim, 'max_position_embeddings': cfg.max_len,
      'rms_norm_eps': cfg.norm_eps, 'hidden_act': 'silu',
      'rope_parameters': {'rope_type': 'default', 'rope_theta': cfg.rope_theta},
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
