"""The learning-rate schedule against nanoGPT's `get_lr`, step by step."""

import math

import numpy as np

from llm_jax.config import base
from llm_jax.train import optim


def nanogpt_lr(it, lr=1e-3, min_lr=1e-4, warmup=100, decay=2000):
  """nanoGPT train.py's get_lr, verbatim in meaning."""
  if it < warmup:
    return lr * (it + 1) / (warmup + 1)
  if it > decay:
    return min_lr
  ratio = (it - warmup) / (decay - warmup)
  return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def test_cosine_schedule_is_nanogpts():
  o = base().optim
  o.lr, o.min_lr, o.warmup_steps, o.decay_steps, o.schedule = 1e-3, 1e-4, 100, 2000, 'cosine'
  fn = optim.schedule(o, total_steps=2500)
  steps = np.arange(2500)
  ours = np.array([float(fn(s)) for s in steps])
  np.testing.assert_allclose(ours, [nanogpt_lr(s) for s in steps], rtol=1e-5)
  assert ours[0] > 0  # the first update already moves the weights


def test_linear_and_constant_schedules():
  o = base().optim
  o.lr, o.min_lr, o.warmup_steps, o.decay_steps, o.schedule = 1.0, 0.0, 3, 0, 'linear'
  fn = optim.schedule(o, total_steps=13)
  np.testing.assert_allclose([float(fn(s)) for s in (0, 2, 3, 8, 13, 20)],
                             [0.25, 0.75, 1.0, 0.5, 0.0, 0.0], atol=1e-7)
  o.schedule = 'constant'
  fn = optim.schedule(o, total_steps=13)
  np.testing.assert_allclose([float(fn(s)) for s in (0, 3, 100)], [0.25, 1.0, 1.0])
