"""all-MiniLM-L6-v2 on the UCI Sentiment Labelled Sentences, by 10-fold cross-validation.

The 3 x 1000 sentences (Amazon, IMDb and Yelp reviews, Kotzias et al. 2015) have no split, so
each of 10 stratified folds validates once while the other nine train (`data.cv_folds`);
the recipe is configs/sst2_minilm.py's full finetune (its import, `runs/minilm`, first),
three epochs of the 2,700 training sentences per fold.

  llm-jax cv --config=configs/sentiment_minilm.py --workdir=runs/sentiment_minilm \
      --config.data.data_dir=../shared/data

Measured on the 2-core CPU: RESULTS
"""

import os

from llm_jax import config as config_lib


def get_config():
  config = config_lib.load(os.path.join(os.path.dirname(__file__), 'sst2_minilm.py:full'))
  config.data.corpus, config.data.cv_folds = 'sentiment', 10
  t, o = config.train, config.optim
  t.steps, t.eval_every, t.checkpoint_every = 255, 0, 0  # 3 epochs of 2,700 in batches of 32
  o.warmup_steps, o.decay_steps = 15, 255
  return config
