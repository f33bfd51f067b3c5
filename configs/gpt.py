"""GPT-2 presets: the architecture of Radford et al. (2019), chosen by argument.

  tiny   4 layers, 4 heads, 128 wide, context 256: tests and CPU demos (vocabulary from the
         tokenizer).
  gpt2   12 layers, 12 heads, 768 wide, context 1024, vocabulary 50257: 124,439,808
         parameters, the same count as Hugging Face's GPT2LMHeadModel (tests/test_presets.py).

  llm-jax train --config=configs/gpt.py:tiny --workdir=runs/gpt_tiny

Pre-norm LayerNorm, learned positions, tanh-GELU MLP of 4x width, biases, tied embeddings,
dropout 0.1 at gpt2 size. The tiny preset is a test and CPU-demo size; no baseline run is recorded for these presets.
"""

from llm_jax.config import base


def get_config(arg: str = 'tiny'):
  config = base()
  config.objective = 'causal_lm'
  m = config.model
  m.kind, m.norm, m.norm_eps, m.pre_norm = 'decoder', 'layernorm', 1e-5, True
  m.positions, m.mlp, m.use_bias, m.tie_embeddings = 'learned', 'gelu_tanh', True, True
  if arg == 'tiny':
    m.num_layers, m.num_heads, m.d_model, m.max_len = 4, 4, 128, 256
  elif arg == 'gpt2':
    m.vocab_size, m.num_layers, m.num_heads, m.d_model, m.max_len = 50257, 12, 12, 768, 1024
    m.dropout = 0.1
  else:
    raise ValueError(f'unknown variant {arg!r}: use "tiny" or "gpt2"')
  return config
