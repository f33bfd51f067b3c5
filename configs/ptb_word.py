"""Word-level GPT on Penn Treebank (Mikolov's version), with its standard 10k vocabulary.

Documents are the corpus's lines, each closed by <eos>; rows are packed from the shuffled
lines and, as in the literature's continuous-stream setup, attention runs across line
boundaries within a row (`data.cross_document`). Perplexity is exp(mean NLL per word),
counting <eos>, over every word of the validation and test files.

  llm-jax train --config=configs/ptb_word.py --workdir=runs/ptb_word \
      --config.data.data_dir=../shared/data

  NOT YET MEASURED for the settings below (3 layers, lr 2e-3, 1,300 steps): the figures that
  follow are of the previous recipe (4 layers, lr 1e-3, 600 steps, warmup 60).
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
  d.corpus = 'ptb'
  d.unit = 'line'
  d.tokenizer = 'word'
  d.batching = 'packed'
  d.cross_document = True

  m = config.model
  m.num_layers = 3
  m.num_heads = 4
  m.d_model = 256
  m.max_len = 128
  m.dropout = 0.2
  m.use_bias = False  # the token table is also the output layer (tie_embeddings)

  t = config.train
  t.batch_size = 16
  t.seq_len = 128
  t.steps = 1300
  t.eval_every = 325
  t.eval_batches = 20
  t.log_every = 50
  t.checkpoint_every = 325
  t.full_eval_batch_size = 32

  o = config.optim
  o.lr = 2e-3
  o.min_lr = 2e-4
  o.warmup_steps = 100
  o.decay_steps = 1300
  o.b2 = 0.99
  o.weight_decay = 0.1
  o.clip_norm = 1.0
  if arg:
    raise ValueError(f'unknown variant {arg!r}; this config has none')
  return config
