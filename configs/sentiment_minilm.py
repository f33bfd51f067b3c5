"""all-MiniLM-L6-v2 on the UCI Sentiment Labelled Sentences, by 10-fold cross-validation.

The 3 x 1000 sentences (Amazon, IMDb and Yelp reviews, Kotzias et al. 2015) have no split, so
each of 10 stratified folds validates once while the other nine train (`data.cv_folds`);
the recipe is configs/sst2_minilm.py's full finetune (its import, `runs/minilm`, first),
three epochs of the 2,700 training sentences per fold.

  llm-jax cv --config=configs/sentiment_minilm.py --workdir=runs/sentiment_minilm \
      --config.data.data_dir=../shared/data

Measured on the 2-core CPU (seed 0, another job niced beside it): accuracy 93.23% +- 1.60
(mean +- standard deviation over the 10 folds; folds 91.33% to 96.00%), F1 0.9324 +- 0.0160,
ROC-AUC 0.9802 +- 0.0066, in 19.8 min (about 2 min a fold, start-up included).
experiments/sentiment_cv/README.md.
"""

import os

from llm_jax import config as config_lib


def get_config():
  config = config_lib.load(os.path.join(os.path.dirname(__file__), 'sst2_minilm.py:full'))
  config.data.corpus = 'sentiment'
  config.data.cv_folds = 10
  t = config.train
  o = config.optim
  # 3 epochs of 2,700 in batches of 32
  t.steps = 255
  t.eval_every = 0
  t.checkpoint_every = 0
  o.warmup_steps = 15
  o.decay_steps = 255
  return config
