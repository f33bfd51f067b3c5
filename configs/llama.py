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
from llm_jax.models import presets

PRESETS = {'tiny': 'llama_tiny', '100m': 'llama_100m', '1b': 'llama_1b', '7b': 'llama_7b'}


def get_config(arg: str = 'tiny'):
  if arg not in PRESETS:
    raise ValueError(f'unknown variant {arg!r}: use "tiny", "100m", "1b" or "7b"')
  config = base()
  config.objective = 'causal_lm'
  config.model.update(presets.get(PRESETS[arg]))
  m = config.model
  t = config.train
  p = config.parallel
  if arg == '1b':
    m.dtype = 'bfloat16'
    m.remat = 'full'
    p.data = 1
    p.fsdp = -1
    t.batch_size = 8
    t.seq_len = 2048
  elif arg == '7b':
    m.dtype = 'bfloat16'
    m.remat = 'full'
    m.scan_layers = True
    p.data = 1
    p.fsdp = -1
    t.batch_size = 1024
    t.seq_len = 4096
  return config
