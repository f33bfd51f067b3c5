import math

import jax
import numpy as np

from llm_jax import objectives
from llm_jax.evaluation import metrics as metrics_lib


def test_causal_lm_loss_matches_hand_computation():
  logits = np.array([[[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]],
                     [[1.0, 1.0, 1.0], [5.0, -1.0, 0.0]]], np.float32)
  targets = np.array([[0, 1], [2, 0]])
  mask = np.array([[1, 1], [1, 0]], np.float32)  # the last position is padding

  def nll(row, target):
    return math.log(sum(math.exp(v) for v in row)) - row[target]

  expected = [nll([2, 1, 0], 0), nll([0, 0, 3], 1), nll([1, 1, 1], 2)]
  loss, metrics = jax.jit(objectives.causal_lm)(logits, targets, mask)
  np.testing.assert_allclose(loss, sum(expected) / 3, rtol=1e-6)
  assert float(metrics['tokens']) == 3
  # argmax hits: row0 pos0 (0 == 0) yes, row0 pos1 (2 != 1) no, row1 pos0 (tie -> 0 != 2) no
  assert float(metrics['correct_sum']) == 1
  summary = metrics_lib.summarize(metrics)
  np.testing.assert_allclose(summary['perplexity'], math.exp(sum(expected) / 3), rtol=1e-6)


def test_masked_positions_do_not_contribute():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(2, 5, 7)).astype(np.float32)
  targets = rng.integers(0, 7, size=(2, 5))
  mask = np.ones((2, 5), np.float32)
  mask[:, 3:] = 0
  garbage = logits.copy()
  garbage[:, 3:] = 1e3 * rng.normal(size=(2, 2, 7))
  a, _ = objectives.causal_lm(logits, targets, mask)
  b, _ = objectives.causal_lm(garbage, targets, mask)
  c, _ = objectives.causal_lm(logits[:, :3], targets[:, :3])
  np.testing.assert_allclose(a, b, rtol=1e-6)
  np.testing.assert_allclose(a, c, rtol=1e-6)
