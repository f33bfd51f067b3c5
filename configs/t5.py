"""T5 presets (Raffel et al. 2020), pretrained by span corruption, chosen by argument.

  tiny   v1.1 style: 2 + 2 layers, 4 heads of 32, 128 wide, gated-GELU MLP 256 wide, own
         output matrix: tests and CPU demos (vocabulary from the tokenizer).
  small  t5-small (v1.0): 6 + 6 layers, 8 heads of 64, 512 wide, ReLU MLP 2048 wide,
         vocabulary 32128, tied and rescaled output: 60,506,624 parameters.
  base   t5-base (v1.0): 12 + 12 layers, 12 heads of 64, 768 wide, ReLU MLP 3072 wide:
         222,903,552 parameters.
  Both counts are those of Hugging Face's T5ForConditionalGeneration (tests/test_presets.py).

  llm-jax train --config=configs/t5.py:tiny --workdir=runs/t5_tiny

RMSNorm pre-norm blocks without biases, unscaled attention (the query's init carries the
1/sqrt(head_dim)), one relative-position bias table per stack (32 buckets up to distance 128).
Measured, tiny on Penn Treebank (raw rows of 141 tokens corrupted to 128 inputs, 15% noise
in spans of mean length 3; an 8000-piece BPE vocabulary plus 100 sentinels; 1500 steps of 32):

  llm-jax train --config=configs/t5.py:tiny --workdir=runs/t5_tiny \
      --config.data.data_dir=../shared/data

target loss 4.09 on validation (token accuracy 35.9% over 20,049 target tokens), 3.99 on
test; 8.4 min on the 2-core CPU.
"""

from llm_jax.config import base
from llm_jax.models import presets

PRESETS = {'tiny': 't5_tiny', 'small': 't5_small', 'base': 't5_base'}


def get_config(arg: str = 'tiny'):
  if arg not in PRESETS:
    raise ValueError(f'unknown variant {arg!r}: use "tiny", "small" or "base"')
  config = base()
  config.objective = 'span_corruption'
  config.model.update(presets.get(PRESETS[arg]))
  d = config.data  # Penn Treebank lines, a BPE vocabulary trained on them, packed rows
  d.corpus = 'ptb'
  d.unit = 'line'
  d.tokenizer = 'sentencepiece'
  d.vocab_size = 8000
  d.batching = 'packed'
  d.extra_ids = 100  # T5's sentinels, after the sentencepiece vocabulary
  if arg == 'tiny':
    t = config.train  # a CPU demo: about 6 epochs of PTB
    t.batch_size = 32
    t.seq_len = 128
    t.steps = 1500
    t.log_every = 50
    t.eval_every = 500
    t.eval_batches = 20
    t.checkpoint_every = 500
    t.full_eval_batch_size = 64
  return config
