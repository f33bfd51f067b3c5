"""The seed documents' LSTM on GLUE SST-2: the non-Transformer baseline beside sst2_minilm.

  llm-jax train --config=configs/sst2_lstm.py --workdir=runs/sst2_lstm \
      --config.data.data_dir=../shared/data

The seeds' Keras model and recipe: a 10,000-word vocabulary, Embedding(16) -> LSTM(128) ->
LSTM(64) -> Dense(1, sigmoid), binary cross-entropy, Adam at Keras' defaults (lr 1e-3,
b2 0.999, eps 1e-7; no weight decay, no clipping, no schedule), batch 32, 50 tokens at most,
no dropout; from scratch, two epochs (4208 steps) of the 67,349 sentences where the seeds
ran ten on their toy texts. The one sigmoid unit enters the softmax objective as the logits
[0, z] (llm_jax/models/lstm.py). Unlike Keras' pad_sequences, rows are padded after the text,
which the LSTM never reads (its recurrence stops at each row's length), and a sentence over
50 words loses its end, not its start.

Measured on the 2-core CPU (seed 0; another job shared the cores): dev accuracy 82.68%, F1
0.8298, ROC-AUC 0.9075 (loss 0.4168) in 2.5 min, 283,713 parameters, about 100 steps/s.
experiments/sst2_lstm/README.md.
"""

from llm_jax.config import base


def get_config():
  config = base()
  config.seed = 0
  config.objective = 'classification'
  d = config.data
  d.corpus, d.tokenizer, d.vocab_size = 'sst2', 'word', 10000
  d.batching = 'packed'  # (unused by classification; windows serve causal LM only)

  m = config.model
  m.kind, m.d_model, m.num_layers, m.lstm_hidden, m.dropout = 'lstm', 16, 2, (128, 64), 0.0

  f = config.finetune
  f.pooling, f.head_dropout = 'last', 0.0

  t = config.train
  t.batch_size, t.seq_len, t.steps = 32, 50, 4208  # two epochs of 2104 batches
  t.log_every, t.eval_every, t.eval_batches, t.checkpoint_every = 50, 1000, 28, 1000
  t.full_eval_batch_size = 64

  o = config.optim
  o.lr, o.min_lr, o.schedule, o.warmup_steps = 1e-3, 0.0, 'constant', 0
  o.b1, o.b2, o.eps, o.weight_decay, o.clip_norm = 0.9, 0.999, 1e-7, 0.0, 0.0
  return config
