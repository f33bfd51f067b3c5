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

  llm-jax train --config=configs/t5.py:tiny --workdir=runs/t5_tiny --config.data.data_dir=../shared/data

target loss 4.09 on validation (token accuracy 35.9% over 20,049 target tokens), 3.99 on
test; 8.4 min on the 2-core CPU.
"""

from llm_jax.config import base


def get_config(arg: str = 'tiny'):
  config = base()
  config.objective = 'span_corruption'
  d = config.data  # Penn Treebank lines, a BPE vocabulary trained on them, packed rows
  d.corpus, d.unit, d.tokenizer, d.vocab_size, d.batching = 'ptb', 'line', 'sentencepiece', 8000, 'packed'
  d.extra_ids = 100  # T5's sentinels, after the sentencepiece vocabulary
  m = config.model
  m.kind, m.norm, m.norm_eps, m.pre_norm = 'encoder_decoder', 'rmsnorm', 1e-6, True
  m.positions, m.relative_buckets, m.relative_max_distance = 'relative', 32, 128
  m.use_bias, m.scaled_attention, m.max_len = False, False, 512
  if arg == 'tiny':
    t = config.train  # a CPU demo: about 6 epochs of PTB
    t.batch_size, t.seq_len, t.steps, t.log_every = 32, 128, 1500, 50
    t.eval_every, t.eval_batches, t.checkpoint_every, t.full_eval_batch_size = 500, 20, 500, 64
    m.num_layers, m.num_heads, m.head_dim, m.d_model, m.d_ff = 2, 4, 32, 128, 256
    m.mlp, m.tie_embeddings, m.rescale_logits = 'geglu', False, False
  elif arg in ('small', 'base'):
    m.vocab_size, m.head_dim, m.mlp, m.dropout = 32128, 64, 'relu', 0.1
    m.tie_embeddings, m.rescale_logits = True, True
    if arg == 'small':
      m.num_layers, m.num_heads, m.d_model, m.d_ff = 6, 8, 512, 2048
    else:
      m.num_layers, m.num_heads, m.d_model, m.d_ff = 12, 12, 768, 3072
  else:
    raise ValueError(f'unknown variant {arg!r}: use "tiny", "small" or "base"')
  return config
