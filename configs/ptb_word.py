"""Word-level GPT on Penn Treebank (Mikolov's version), with its standard 10k vocabulary.

Documents are the corpus's lines, each closed by <eos>; rows are packed from the shuffled
lines and, as in the literature's continuous-stream setup, attention runs across line
boundaries within a row (`data.cross_document`). Perplexity is exp(mean NLL per word),
counting <eos>, over every word of the validation and test files.

  llm-jax train --config=configs/ptb_word.py --workdir=runs/ptb_word \
      --config.data.data_dir=../shared/data

  Measured on the 2-core Zen 4 CPU, sharing it with other jobs (17.5 min wall, 600 steps =
  1.2M tokens, 1.3 epochs): validation perplexity 227.96 over its 73,760 words, test perplexity
  214.87 over 82,430 words (<eos> counted). A small model trained briefly: the literature's
  2-layer LSTMs reach 82-115 after 13-40 epochs (Zaremba et al. 2014).
"""

from llm_jax.config import base


def get_config(arg: str = ''):
  config = base()
  config.seed = 0
  d = config.data
  d.corpus, d.unit, d.tokenizer = 'ptb', 'line', 'word'
  d.batching, d.cross_document = 'packed', True

  m = config.model
  m.num_layers, m.num_heads, m.d_model, m.max_len = 4, 4, 256, 128
  m.dropout, m.use_bias = 0.2, False

  t = config.train
  t.batch_size, t.seq_len, t.steps = 16, 128, 600
  t.eval_every, t.eval_batches, t.log_every, t.checkpoint_every = 200, 20, 50, 200
  t.full_eval_batch_size = 32

  o = config.optim
  o.lr, o.min_lr, o.warmup_steps, o.decay_steps = 1e-3, 1e-4, 60, 600
  o.b2, o.weight_decay, o.clip_norm = 0.99, 0.1, 1.0
  if arg:
    raise ValueError(f'unknown variant {arg!r}; this config has none')
  return config
