"""GPT-2 (``GPT2LMHeadModel``): pre-norm LayerNorm, learned positions, fused q/k/v Conv1D."""

from __future__ import annotations

from llm_jax.convert import rules as r
from llm_jax.convert.family import HF_ACTIVATIONS, Family, activation, require
from llm_jax.models import TransformerConfig, paths


def config_from_hf(hf: dict, names: frozenset) -> TransformerConfig:
  require([f'{key}={hf[key]} is not supported' for key in
           ('add_cross_attention', 'scale_attn_by_inverse_layer_idx') if hf.get(key)],
          'gpt2 config.json')
  return TransformerConfig(
      vocab_size=hf['vocab_size'], kind='decoder', d_model=hf['n_embd'], num_heads=hf['n_head'],
      num_layers=hf['n_layer'], d_ff=hf.get('n_inner') or 4 * hf['n_embd'],
      max_len=hf['n_positions'], dropout=hf.get('resid_pdrop', 0.1), norm='layernorm',
      norm_eps=hf.get('layer_norm_epsilon', 1e-5), pre_norm=True, positions='learned',
      mlp=activation(hf.get('activation_function', 'gelu_new'), 'gpt2 config.json'),
      use_bias=True, scaled_attention=hf.get('scale_attn_weights', True),
      tie_embeddings='lm_head.weight' not in names,
      init_std=hf.get('initializer_range', 0.02))


def config_to_hf(cfg: TransformerConfig) -> dict:
  return {
      'architectures': ['GPT2LMHeadModel'], 'model_type': 'gpt2', 'vocab_size': cfg.vocab_size,
      'n_embd': cfg.d_model, 'n_head': cfg.num_heads, 'n_layer': cfg.num_layers,
      'n_inner': cfg.ff_dim, 'n_positions': cfg.max_len,
      'activation_function': HF_ACTIVATIONS.get(cfg.mlp, cfg.mlp),
      'layer_norm_epsilon': cfg.norm_eps, 'resid_pdrop': cfg.dropout,
      'embd_pdrop': cfg.dropout, 'attn_pdrop': 0.0, 'scale_attn_weights': cfg.scaled_attention,
      'tie_word_embeddings': cfg.tie_embeddings, 'initializer_range': cfg.init_std}


def tensor_rules(cfg: TransformerConfig) -> list[r.Rule]:
  out = [r.copy('transformer.wte.weight', 'embed/embedding'),
         r.copy('transformer.wpe.weight', 'decoder/pos_embedding'),
         r.copy('transformer.ln_f.weight', 'decoder/final_norm/scale'),
         r.copy('transformer.ln_f.bias', 'decoder/final_norm/bias')]
  for i in range(cfg.num_layers):
    h, b = f'transformer.h.{i}.', f'decoder/{paths.block(i)}/'
    qkv = [f'{b}attention/{name}/' for name in ('query', 'key', 'value')]
    out += [
        r.copy(h + 'ln_1.weight', b + 'attention_norm/scale'),
        r.copy(h + 'ln_1.bias', b + 'attention_norm/bias'),
        r.fused(r.conv1d, h + 'attn.c_attn.weight', [p + 'kernel' for p in qkv]),
        r.fused(r.flat, h + 'attn.c_attn.bias', [p + 'bias' for p in qkv]),
        r.conv1d(h + 'attn.c_proj.weight', b + 'attention/out/kernel', n_in=2),
        r.copy(h + 'attn.c_proj.bias', b + 'attention/out/bias'),
        r.copy(h + 'ln_2.weight', b + 'mlp_norm/scale'),
        r.copy(h + 'ln_2.bias', b + 'mlp_norm/bias'),
        r.conv1d(h + 'mlp.c_fc.weight', b + 'mlp/wi/kernel'),
        r.copy(h + 'mlp.c_fc.bias', b + 'mlp/wi/bias'),
        r.conv1d(h + 'mlp.c_proj.weight', b + 'mlp/wo/kernel'),
        r.copy(h + 'mlp.c_proj.bias', b + 'mlp/wo/bias'),
    ]
  if not cfg.tie_embeddings:
    out.append(r.linear('lm_head.weight', 'lm_head/kernel'))
  return out


FAMILY = Family(
    model_type='gpt2', prefix='transformer.', base_architecture='GPT2Model',
    heads=('lm_head.',), config_from_hf=config_from_hf, config_to_hf=config_to_hf,
    rules=tensor_rules, duplicates={'lm_head.weight': 'transformer.wte.weight'},
    # causal-mask buffers that checkpoints written before transformers 4.x still carry
    dropped=('transformer.h.*.attn.bias', 'transformer.h.*.attn.masked_bias'))
