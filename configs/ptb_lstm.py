"""Zaremba, Sutskever and Vinyals (2014), "Recurrent Neural Network Regularization", Table 1 on
Mikolov's Penn Treebank: 2-layer LSTM language models, small (non-regularized), medium and
large (dropout on the non-recurrent connections).

The setup is the paper's and its reference code's (the TensorFlow PTB tutorial): truncated
BPTT over the training stream cut into 20 parallel streams (`data.batching='streams'`), the
state carried from batch to batch and reset at each epoch; every weight uniform in
[-init_scale, init_scale]; plain SGD on the loss summed over the unrolled steps (averaged over
the streams), lr 1 for the first epochs, then decayed after each epoch; the gradient's global
norm clipped. Evaluation reads each split as one stream whose state is never reset (the
paper's batch-1 test), so the figures count every word and <eos> of the file. The variants:

  variant  hidden  steps  init  dropout  epochs  lr x decay after epoch  clip  paper val / test
  small    200     20     0.1   0        13      0.5 after 4             5     120.7 / 114.5
  medium   650     35     0.05  0.5      39      0.8 after 6             5      86.2 /  82.7
  large    1500    35     0.04  0.65     55      1/1.15 after 14         10     82.2 /  78.4

  llm-jax train --config=configs/ptb_lstm.py:small --workdir=runs/ptb_lstm_small \
      --config.data.data_dir=../shared/data

  Measured on the 2-core AMD EPYC (Zen 3, float32, seed 0; experiments/ptb/README.md):
  small: validation 118.71, test 114.53 (paper 120.7 / 114.5) after 13 epochs (30,199 steps),
  69.0 min wall, a median 2,970 tokens/s; its best validation, 118.08, after epoch 6.
  medium: 300 steps only (validation 482.78 at step 300, 6.4 min); the full 39 epochs
  (about 12 h here) and large are for an accelerator.
"""

from llm_jax.config import base

VARIANTS = {  # hidden, unrolled steps, init bound, dropout, epochs, lr decay, epochs at lr, clip
    'small': (200, 20, 0.1, 0.0, 13, 0.5, 4, 5.0),
    'medium': (650, 35, 0.05, 0.5, 39, 0.8, 6, 5.0),
    'large': (1500, 35, 0.04, 0.65, 55, 1 / 1.15, 14, 10.0),
}


def get_config(arg: str = 'small'):
  arg = arg or 'small'
  if arg not in VARIANTS:
    raise ValueError(f'unknown variant {arg!r}; this config has {", ".join(VARIANTS)}')
  hidden, steps, init, dropout, epochs, decay, constant, clip = VARIANTS[arg]
  config = base()
  config.seed = 0
  d = config.data
  d.corpus = 'ptb'
  d.unit = 'line'  # each line closed by <eos>, as the reference reader does
  d.tokenizer = 'word'
  d.batching = 'streams'

  m = config.model
  m.kind = 'lstm'
  m.num_layers = 2
  m.d_model = hidden  # the embedding is as wide as the layers
  m.dropout = dropout
  m.init = 'uniform'
  m.init_scale = init
  m.tie_embeddings = False

  t = config.train
  t.batch_size = 20
  t.seq_len = steps
  t.epochs = epochs
  t.eval_every_epochs = 1  # the whole validation stream after each epoch (the paper's curve)
  t.checkpoint_every_epochs = 1
  t.eval_batches = 0
  t.select_metric = 'perplexity'
  t.log_every = 200
  t.full_eval_batch_size = 50  # 50 * seq_len targets of the one evaluation stream per call

  o = config.optim
  o.name = 'sgd'
  o.lr = 1.0
  o.min_lr = 0.0
  o.warmup_steps = 0
  o.schedule = 'staircase'
  o.lr_decay = decay
  o.decay_every_epochs = 1
  o.decay_begin_epochs = constant
  o.weight_decay = 0.0
  o.clip_norm = clip
  return config
