"""GPT-2 presets: the architecture of Radford et al. (2019), chosen by argument.

  tiny   4 layers, 4 heads, 128 wide, context 256: tests and CPU demos (vocabulary from the
         tokenizer).
  gpt2   12 layers, 12 heads, 768 wide, context 1024, vocabulary 50257: 124,439,808
         parameters, the same count as Hugging Face's GPT2LMHeadModel (tests/test_presets.py).

  llm-jax train --config=configs/gpt.py:tiny --workdir=runs/gpt_tiny

Pre-norm LayerNorm, learned positions, tanh-GELU MLP of 4x width, biases, tied embeddings,
dropout 0.1 at gpt2 size (llm_jax/models/presets.py). The tiny preset is a test and CPU-demo
size; no baseline run is recorded for these presets.
"""

from llm_jax.config import base
from llm_jax.models import presets

PRESETS = {'tiny': 'gpt2_tiny', 'gpt2': 'gpt2'}


def get_config(arg: str = 'tiny'):
  if arg not in PRESETS:
    raise ValueError(f'unknown variant {arg!r}: use "tiny" or "gpt2"')
  config = base()
  config.objective = 'causal_lm'
  config.model.update(presets.get(PRESETS[arg]))
  return config
