"""Learning rate and weight decay of the Keras-style SST-2 LSTM, by random and TPE search.

  llm-jax sweep --sweep=configs/sweeps/sst2_lstm.py:random --dir=runs/sweep_sst2_lstm_random
  llm-jax sweep --sweep=configs/sweeps/sst2_lstm.py:tpe --dir=runs/sweep_sst2_lstm_tpe
  llm-jax plot runs/sweep_sst2_lstm_tpe --kind=sweep --out=sweep_tpe.png

(with LLM_JAX_DATA_DIR=../shared/data). configs/sst2_lstm.py cut to 800 steps (0.38 epoch) of
AdamW (its Adam recipe plus decoupled weight decay), each trial's whole-dev accuracy evaluated
every 200 steps: the best of those is the metric, and a trial whose accuracy falls under the
median of earlier trials at the same step is pruned (after 3 trials). 10 trials each.

Measured 2026-12-02 on the 2-core AMD EPYC (Zen 3): both searches best at lr 1.2e-3, weight
decay 0.008: dev accuracy 80.28% (random: 3 trials complete, 7 pruned; TPE: 4 complete, 6
pruned); 48-80 s a trial. experiments/sweeps/README.md.
"""


def get_sweep(method: str = 'tpe'):
  return dict(
      config='configs/sst2_lstm.py',
      overrides=('train.steps=800', 'train.eval_every=200', 'train.checkpoint_every=200',
                 'train.select_metric=accuracy', 'train.eval_batches=0'),
      space={'optim.lr': ('loguniform', 1e-4, 3e-2),
             'optim.weight_decay': ('uniform', 0.0, 0.3)},
      metric='best_accuracy',
      direction='maximize',
      method=method,
      trials=10,
      prune=True,
      prune_startup=3,
      tpe_startup=4,
      seed=0,
  )
