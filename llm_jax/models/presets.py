"""Named model shapes: the ``model`` section of the families' published sizes.

An experiment config selects one (``config.model.update(presets.get('bert_tiny'))``) and sets
only what its experiment changes, so a family's architecture is written once. Each preset's
parameter count is checked against Hugging Face's model of that config in
``tests/test_presets.py``. Training choices (dtype, remat, dropout of a finetune) stay in
the configs.
"""

from __future__ import annotations

# GPT-2 (Radford et al. 2019): pre-norm LayerNorm, learned positions, tanh-GELU, biases, tied
GPT2 = {
    'kind': 'decoder',
    'norm': 'layernorm',
    'norm_eps': 1e-5,
    'pre_norm': True,
    'positions': 'learned',
    'mlp': 'gelu_tanh',
    'use_bias': True,
    'tie_embeddings': True,
}
# BERT (Devlin et al. 2019): post-norm, LayerNorm eps 1e-12, two token types, exact GELU,
# the masked-LM head on the tied table; no pooler (MLM alone never trains it)
BERT = {
    'kind': 'encoder',
    'norm': 'layernorm',
    'norm_eps': 1e-12,
    'pre_norm': False,
    'embed_norm': True,
    'positions': 'learned',
    'type_vocab_size': 2,
    'mlp': 'gelu',
    'use_bias': True,
    'tie_embeddings': True,
    'mlm_head': True,
    'pooler': False,
}
# T5 (Raffel et al. 2020): RMSNorm pre-norm without biases, unscaled attention, one relative
# bias table per stack (32 buckets up to distance 128)
T5 = {
    'kind': 'encoder_decoder',
    'norm': 'rmsnorm',
    'norm_eps': 1e-6,
    'pre_norm': True,
    'positions': 'relative',
    'relative_buckets': 32,
    'relative_max_distance': 128,
    'use_bias': False,
    'scaled_attention': False,
    'max_len': 512,
}
# LLaMA (Touvron et al. 2023): RMSNorm pre-norm, rotary positions, SwiGLU, no biases
LLAMA = {
    'kind': 'decoder',
    'norm': 'rmsnorm',
    'norm_eps': 1e-6,
    'pre_norm': True,
    'positions': 'rope',
    'rope_theta': 10000.0,
    'mlp': 'swiglu',
    'use_bias': False,
}

PRESETS: dict[str, dict] = {
    # 4 layers, 4 heads, 128 wide, context 256: tests and CPU demos
    'gpt2_tiny': {**GPT2, 'num_layers': 4, 'num_heads': 4, 'd_model': 128, 'max_len': 256},
    # 124,439,808 parameters
    'gpt2': {**GPT2, 'vocab_size': 50257, 'num_layers': 12, 'num_heads': 12, 'd_model': 768,
             'max_len': 1024, 'dropout': 0.1},
    # BERT-Tiny's shape (Turc et al. 2019)
    'bert_tiny': {**BERT, 'num_layers': 2, 'num_heads': 2, 'd_model': 128, 'max_len': 128},
    # bert-base-uncased: 109,514,298 parameters with the MLM head
    'bert_base': {**BERT, 'vocab_size': 30522, 'num_layers': 12, 'num_heads': 12,
                  'd_model': 768, 'max_len': 512, 'dropout': 0.1},
    # all-MiniLM-L6-v2 as convert --from-hf reads it: a bare BERT body with its pooler
    'minilm_l6': {**BERT, 'vocab_size': 30522, 'num_layers': 6, 'num_heads': 12,
                  'd_model': 384, 'd_ff': 1536, 'max_len': 512, 'dropout': 0.1,
                  'mlm_head': False, 'pooler': True},
    # v1.1 style, 2 + 2 layers, gated GELU, own output matrix: tests and CPU demos
    't5_tiny': {**T5, 'num_layers': 2, 'num_heads': 4, 'head_dim': 32, 'd_model': 128,
                'd_ff': 256, 'mlp': 'geglu', 'tie_embeddings': False, 'rescale_logits': False},
    # t5-small (v1.0): 60,506,624 parameters
    't5_small': {**T5, 'vocab_size': 32128, 'num_layers': 6, 'num_heads': 8, 'head_dim': 64,
                 'd_model': 512, 'd_ff': 2048, 'mlp': 'relu', 'dropout': 0.1,
                 'tie_embeddings': True, 'rescale_logits': True},
    # t5-base (v1.0): 222,903,552 parameters
    't5_base': {**T5, 'vocab_size': 32128, 'num_layers': 12, 'num_heads': 12, 'head_dim': 64,
                'd_model': 768, 'd_ff': 3072, 'mlp': 'relu', 'dropout': 0.1,
                'tie_embeddings': True, 'rescale_logits': True},
    # 4 query and 2 key/value heads: tests and CPU demos
    'llama_tiny': {**LLAMA, 'num_layers': 4, 'num_heads': 4, 'num_kv_heads': 2, 'd_model': 128,
                   'd_ff': 384, 'max_len': 256, 'tie_embeddings': False},
    # 100,092,672 parameters, tied embeddings
    'llama_100m': {**LLAMA, 'vocab_size': 32000, 'num_layers': 12, 'num_heads': 12,
                   'num_kv_heads': 4, 'd_model': 768, 'd_ff': 2048, 'max_len': 2048,
                   'tie_embeddings': True},
    # TinyLlama-1.1B's shape: 1,100,048,384 parameters
    'llama_1b': {**LLAMA, 'vocab_size': 32000, 'num_layers': 22, 'num_heads': 32,
                 'num_kv_heads': 4, 'd_model': 2048, 'd_ff': 5632, 'max_len': 2048,
                 'tie_embeddings': False, 'norm_eps': 1e-5},
    # Llama-2-7B's shape: 6,738,415,616 parameters
    'llama_7b': {**LLAMA, 'vocab_size': 32000, 'num_layers': 32, 'num_heads': 32,
                 'num_kv_heads': 32, 'd_model': 4096, 'd_ff': 11008, 'max_len': 4096,
                 'tie_embeddings': False, 'norm_eps': 1e-5},
}


def get(name: str) -> dict:
  """The model fields of preset ``name`` (a fresh dict: the config may amend it)."""
  if name not in PRESETS:
    raise KeyError(f'no model preset {name!r}; presets: {", ".join(PRESETS)}')
  return dict(PRESETS[name])
