"""Training parity: our train step (loss, gradients, clipping, AdamW with decay on matrices
only, warmup + cosine schedule) against PyTorch's, as nanoGPT trains, from the same weights on
the same batches. Logit parity alone would not catch an optimizer that differs."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import torch
import transformers

from llm_jax import config as config_lib
from llm_jax import models, tasks
from llm_jax.train import optim
from llm_jax.train import setup as setup_lib
from llm_jax.train.state import TrainState
from tests import hf_parity

STEPS, WARMUP, LR, MIN_LR = 12, 3, 1e-2, 1e-3


def nanogpt_lr(it):
  if it < WARMUP:
    return LR * (it + 1) / (WARMUP + 1)
  ratio = min(1.0, (it - WARMUP) / (STEPS - WARMUP))
  return MIN_LR + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (LR - MIN_LR)


def test_ten_adamw_steps_match_pytorch(tmp_path):
  torch.manual_seed(0)
  hf_model = transformers.GPT2LMHeadModel(transformers.GPT2Config(
      vocab_size=96, n_positions=16, n_embd=32, n_layer=2, n_head=4, resid_pdrop=0.0,
      embd_pdrop=0.0, attn_pdrop=0.0))
  cfg, params, _ = hf_parity.convert_both_ways(hf_model, tmp_path)
  rng = np.random.default_rng(0)
  # counting sequences from random starts: learnable within a few steps
  batches = [(rng.integers(0, 96, (4, 1)) + np.arange(17)) % 96 for _ in range(STEPS)]

  o = config_lib.base().optim
  o.lr, o.min_lr, o.warmup_steps, o.decay_steps, o.schedule = LR, MIN_LR, WARMUP, STEPS, 'cosine'
  o.b1, o.b2, o.eps, o.weight_decay, o.clip_norm = 0.9, 0.99, 1e-8, 0.1, 1.0
  tx = optim.make(o, STEPS)
  model = models.build(cfg)
  step = jax.jit(lambda state, batch: setup_lib.train_step(
      state, batch, model=model, loss=tasks.bind('causal_lm', 96, {}), tx=tx,
      rng=jax.random.key(0)))
  state = TrainState(jnp.array(0, jnp.int32), params, tx.init(params))
  ours = []
  for ids in batches:
    state, metrics = step(state, {'inputs': ids[:, :-1], 'targets': ids[:, 1:]})
    ours.append(float(metrics['nll_sum'] / metrics['tokens']))

  # nanoGPT's configure_optimizers and training loop
  decay = [p for p in hf_model.parameters() if p.dim() >= 2]
  no_decay = [p for p in hf_model.parameters() if p.dim() < 2]
  adamw = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.1},
                             {'params': no_decay, 'weight_decay': 0.0}],
                            lr=LR, betas=(0.9, 0.99), eps=1e-8)
  hf_model.train()
  theirs = []
  for it, ids in enumerate(batches):
    for group in adamw.param_groups:
      group['lr'] = nanogpt_lr(it)
    ids = torch.from_numpy(ids)
    logits = hf_model(input_ids=ids[:, :-1]).logits
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 96), ids[:, 1:].reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(hf_model.parameters(), 1.0)
    adamw.step()
    adamw.zero_grad(set_to_none=True)
    theirs.append(loss.item())

  assert theirs[-1] < theirs[0] - 0.5  # the steps really train
  np.testing.assert_allclose(ours, theirs, rtol=2e-5)
  ids, mask = hf_parity.padded_batch(96, pad_id=0, seed=1)
  after = jax.jit(model.apply)({'params': state.params}, ids, None, mask)
  hf_parity.assert_close(after, hf_parity.torch_logits(hf_model.eval(), input_ids=ids,
                                                       attention_mask=mask), mask, 1e-3)
