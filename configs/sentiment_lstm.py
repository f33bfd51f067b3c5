"""The Keras-style LSTM on the UCI Sentiment Labelled Sentences, by 10-fold cross-validation.

configs/sst2_lstm.py's model and recipe (Embedding(16) -> LSTM(128) -> LSTM(64) -> one
sigmoid unit, Adam at Keras' defaults, batch 32, 50 words at most) with its vocabulary from
these 3,000 sentences, ten epochs of the 2,700 training sentences of each fold, as the Keras
tutorial runs ten.

  llm-jax cv --config=configs/sentiment_lstm.py --workdir=runs/sentiment_lstm \
      --config.data.data_dir=../shared/data

Measured on the 2-core CPU (seed 0, another job niced beside it): accuracy 74.07% +- 2.93
(mean +- standard deviation over the 10 folds; folds 69.33% to 77.67%), F1 0.7422 +- 0.0289,
ROC-AUC 0.8088 +- 0.0260, in 3.0 min. Training accuracy ends at 99.6%: ten epochs of 2,700
sentences overfit. Re-measured 2026-12-01 (2-core Zen 3): 73.70% +- 3.32, F1 0.7398, ROC-AUC
0.8063, 8.0 min, the same before and after issue 12's layout. experiments/sentiment_cv/README.md.
"""

import os

from llm_jax import config as config_lib


def get_config():
  config = config_lib.load(os.path.join(os.path.dirname(__file__), 'sst2_lstm.py'))
  config.data.corpus = 'sentiment'
  config.data.cv_folds = 10
  t = config.train
  # 10 epochs of 2,700 in batches of 32
  t.steps = 844
  t.eval_every = 0
  t.checkpoint_every = 0
  return config
