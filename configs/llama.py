"""LLaMA-style presets (Touvron et al. 2023), chosen by argument.

  tiny   4 layers, 4 query and 2 key/value heads, 128 wide, SwiGLU 384 wide, context 256:
         tests and CPU demos (vocabulary from the tokenizer).
  100m   12 layers, 12 query and 4 key/value heads of 64, 768 wide, SwiGLU 2048 wide,
         context 2048, vocabulary 32000, tied embeddings: 100,092,672 parameters, the count of
         Hugging Face's LlamaForCausalLM of that config (tests/test_presets.py).

  1b     TinyLlama-1.1B's shape: 22 layers, 32 query and 4 key/value heads of 64, 2048 wide,
         SwiGLU 5632 wide, context 2048, vocabulary 32000, untied: 1,100,048,384 parameters;
         bfloat16, full remat, FSDP over every device (experiments/gpu/run.py).
  7b     Llama-2-7B's shape: 32 layers, 32 heads of 128, 4096 wide, SwiGLU 11008 wide,
         context 4096, vocabulary 32000, untied: 6,738,415,616 parameters; trained in bfloat16
         with full remat, FSDP over every device (for `llm-jax plan`, not for this CPU).

  llm-jax train --config=configs/llama.py:tiny --workdir=runs/llama_tiny
  llm-jax plan --config=configs/llama.py:7b --chips=256 --chip=tpu-v5p

RMSNorm pre-norm, rotary positions (theta 10000), no biases, grouped-query attention.
The tiny preset is a test and CPU-demo size; no baseline run is recorded for these presets.
"""

from llm_jax.config import base


def get_config(arg: str = 'tiny'):
  config = base()
  config.objective = 'causal_lm'
  m = config.model
  m.kind, m.norm, m.norm_eps, m.pre_norm = 'decoder', 'rmsnorm', 1e-6, True
  m.positions, m.rope_theta, m.mlp, m.use_bias = 'rope', 10000.0, 'swiglu', False
  if arg == 'tiny':
    m.num_layers, m.num_heads, m.num_kv_heads, m.d_model, m.d_ff = 4, 4, 2, 128, 384
    m.max_len, m.tie_embeddings = 256, False
  elif arg == '100m':
    m.vocab_size, m.num_layers, m.num_heads, m.num_kv_heads = 32000, 12, 12, 4
    m.d_model, m.d_ff, m.max_len, m.tie_embeddings = 768, 2048, 2048, True
  elif arg == '1b':
    m.vocab_size, m.num_layers, m.num_heads, m.num_kv_heads = 32000, 22, 32, 4
    m.d_model, m.d_ff, m.max_len, m.tie_embeddings, m.norm_eps = 2048, 5632, 2048, False, 1e-5
    m.dtype, m.remat = 'bfloat16', 'full'
    config.parallel.data, config.parallel.fsdp = 1, -1
    config.train.batch_size, config.train.seq_len = 8, 2048
  elif arg == '7b':
    m.vocab_size, m.num_layers, m.num_heads, m.num_kv_heads = 32000, 32, 32, 32
    m.d_model, m.d_ff, m.max_len, m.tie_embeddings, m.norm_eps = 4096, 11008, 4096, False, 1e-5
    m.dtype, m.remat, m.scan_layers = 'bfloat16', 'full', True
    config.parallel.data, config.parallel.fsdp = 1, -1
    config.train.batch_size, config.train.seq_len = 1024, 4096
  else:
    raise ValueError(f'unknown variant {arg!r}: use "tiny", "100m", "1b" or "7b"')
  return config
