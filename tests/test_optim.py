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


def _params():
  rng = np.random.default_rng(0)
  return {'dense': {'kernel': rng.normal(size=(3, 4)).astype(np.float32),
                    'bias': rng.normal(size=(4,)).astype(np.float32)}}


def _grads(step):
  rng = np.random.default_rng(step + 1)
  return {'dense': {'kernel': rng.normal(size=(3, 4)).astype(np.float32),
                    'bias': rng.normal(size=(4,)).astype(np.float32)}}


def _run(tx, steps=3):
  import jax
  import optax
  params = jax.tree_util.tree_map(jax.numpy.asarray, _params())
  state = tx.init(params)
  for step in range(steps):
    updates, state = tx.update(_grads(step), state, params)
    params = optax.apply_updates(params, updates)
  return params


def _config(name, **fields):
  o = base().optim
  o.name, o.schedule, o.warmup_steps, o.clip_norm, o.lr = name, 'constant', 0, 0.0, 0.1
  for k, v in fields.items():
    o[k] = v
  return o


def _torch_steps(make, steps=3):
  """The same updates through torch.optim, weight decay on the kernel only (a second group)."""
  import torch
  p = {k: torch.tensor(v, requires_grad=True) for k, v in _params()['dense'].items()}
  opt = make([{'params': [p['kernel']]}, {'params': [p['bias']], 'weight_decay': 0.0}])
  for step in range(steps):
    for k, g in _grads(step)['dense'].items():
      p[k].grad = torch.tensor(g)
    opt.step()
  return {k: v.detach().numpy() for k, v in p.items()}


def test_each_optimizer_name_steps_as_its_reference():
  import optax
  import torch
  lr = 0.1
  cases = {
      'adamw': (_config('adamw', weight_decay=0.1, b2=0.95),
                optax.adamw(lr, b1=0.9, b2=0.95, eps=1e-8, weight_decay=0.1,
                            mask=optim.decay_mask)),
      'lion': (_config('lion', weight_decay=0.2), optax.lion(lr, weight_decay=0.2,
                                                             mask=optim.decay_mask)),
      'adafactor': (_config('adafactor', weight_decay=0.0, decay_rate=0.7),
                    optax.adafactor(lr, decay_rate=0.7)),
  }
  for name, (o, reference) in cases.items():
    ours, theirs = _run(optim.make(o, 10)), _run(reference)
    for k in ('kernel', 'bias'):
      np.testing.assert_allclose(ours['dense'][k], theirs['dense'][k], rtol=1e-6, err_msg=name)
  # adam and sgd: L2 added to the gradient, as torch.optim means weight_decay
  torch_cases = {
      'adam': (_config('adam', weight_decay=0.1, b2=0.999),
               lambda g: torch.optim.Adam(g, lr=lr, betas=(0.9, 0.999), eps=1e-8,
                                          weight_decay=0.1)),
      'sgd': (_config('sgd', weight_decay=0.01), lambda g: torch.optim.SGD(g, lr=lr,
                                                                             weight_decay=0.01)),
      'sgd nesterov': (_config('sgd', weight_decay=0.01, momentum=0.9, nesterov=True),
                       lambda g: torch.optim.SGD(g, lr=lr, momentum=0.9, nesterov=True,
                                                 weight_decay=0.01)),
  }
  for name, (o, make) in torch_cases.items():
    ours, theirs = _run(optim.make(o, 10)), _torch_steps(make)
    for k in ('kernel', 'bias'):
      np.testing.assert_allclose(ours['dense'][k], theirs[k], rtol=1e-5, atol=1e-5,
                                 err_msg=name)


def test_optimizer_fields_are_checked_by_name():
  assert optim.errors(_config('sgd', momentum=0.9, nesterov=True, weight_decay=0.0), 10) == []
  problems = optim.errors(_config('sgd', b2=0.95), 10)
  assert any('optim.b2=0.95 is not read by optim.name=\'sgd\'' in p for p in problems)
  assert any('is not one of' in p for p in optim.errors(_config('rmsprop'), 10))
  assert any('optim.nesterov' in p for p in optim.errors(_config('sgd', nesterov=True), 10))
  assert any('momentum' in p for p in optim.errors(_config('adamw', momentum=0.9), 10))
