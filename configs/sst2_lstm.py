"""The Keras-style LSTM on GLUE SST-2: the non-Transformer baseline beside sst2_minilm.

  llm-jax train --config=configs/sst2_lstm.py --workdir=runs/sst2_lstm \
      --config.data.data_dir=../shared/data

The Keras sentiment tutorial's model and recipe: a 10,000-word vocabulary, Embedding(16) ->
LSTM(128) -> LSTM(64) -> Dense(1, sigmoid), binary cross-entropy, Adam at Keras' defaults (lr 1e-3,
b2 0.999, eps 1e-7; no weight decay, no clipping, no schedule), batch 32, 50 tokens at most,
no dropout; from scratch, two epochs (4208 steps) of the 67,349 sentences where the tutorial
ran ten on its toy texts. The one sigmoid unit enters the softmax objective as the logits
[0, z] (llm_jax/models/lstm.py). Unlike Keras' pad_sequences, rows are padded after the text,
which the LSTM never reads (its recurrence stops at each row's length), and a sentence over
50 words loses its end, not its start.

Measured on the 2-core CPU (seed 0; another job shared the cores): dev accuracy 82.68%, F1
0.8298, ROC-AUC 0.9075 (loss 0.4168) in 2.5 min, 283,713 parameters, about 100 steps/s;
re-measured 2026-12-01 on a 2-core Zen 3: 82.34%, F1 0.8266, ROC-AUC 0.9066 (loss 0.4305), 2.9 min.
experiments/sst2_lstm/README.md.
"""

from llm_jax.config import base


def get_config():
  config = base()
  config.seed = 0
  config.objective = 'classification'
  d = config.data
  d.corpus = 'sst2'
  d.tokenizer = 'word'
  d.vocab_size = 10000

  m = config.model
  m.kind = 'lstm'
  m.d_model = 16
  m.num_layers = 2
  m.lstm_hidden = (128, 64)
  m.dropout = 0.0

  f = config.finetune
  f.pooling = 'last'
  f.head_dropout = 0.0

  t = config.train
  # two epochs of 2104 batches
  t.batch_size = 32
  t.seq_len = 50
  t.steps = 4208
  t.log_every = 50
  t.eval_every = 1000
  t.eval_batches = 28
  t.checkpoint_every = 1000
  t.full_eval_batch_size = 64

  o = config.optim
  o.lr = 1e-3
  o.min_lr = 0.0
  o.schedule = 'constant'
  o.warmup_steps = 0
  o.b1 = 0.9
  o.b2 = 0.999
  o.eps = 1e-7
  o.weight_decay = 0.0
  o.clip_norm = 0.0
  return config
