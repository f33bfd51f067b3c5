"""Training speed of a config: tokens/s, median step time and MFU, beside Hugging Face.

MFU is measured against the matmul peak this machine reaches *now* (a jitted 2048^3 f32
matmul), not a datasheet figure: these machines are noisy, so the figures that mean
something are ratios and medians taken side by side in one run.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from llm_jax import config as config_lib
from llm_jax import parallel
from llm_jax.models import TransformerConfig
from llm_jax.train import loop


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def matmul_peak(n: int = 2048, repeats: int = 10) -> float:
  """FLOP/s of a jitted ``n^3`` float32 matmul on the default device (median)."""
  a = jnp.ones((n, n), jnp.float32)
  matmul = jax.jit(jnp.dot)
  matmul(a, a).block_until_ready()
  return 2 * n ** 3 / median_seconds(lambda: matmul(a, a).block_until_ready(), repeats)


def flops_per_token(cfg: TransformerConfig, seq_len: int, n_params: int) -> float:
  """Training FLOPs per token in nanoGPT's convention, so MFUs compare with its figures.

  ``6 * n_params`` (forward + backward; ``n_params`` without the position table) plus
  attention counted in full, ``12 * layers * heads * head_dim * seq_len``, although causal
  masking could skip half of those score and value products.
  """
  return 6 * n_params + 12 * cfg.num_layers * cfg.num_heads * cfg.dim_per_head * seq_len


def _batches(data, n: int = 4) -> list[dict[str, np.ndarray]]:
  train = data.train(None)
  return [next(train) for _ in range(n)]


def bench_llm_jax(config: ml_collections.ConfigDict, steps: int) -> dict[str, float]:
  """Median time of the jitted train step, on real batches, after compiling and warming up."""
  data = loop.load_data(config)
  model_cfg = config_lib.model_config(config, data.tokenizer.vocab_size)
  setup = loop.build(config, model_cfg, data.tokenizer.special)
  with parallel.activate(setup.mesh):
    state = setup.init()
    n_params = sum(x.size for x in jax.tree_util.tree_leaves(state.params))
    if model_cfg.positions == 'learned':
      n_params -= model_cfg.max_len * model_cfg.d_model
    batches = [parallel.global_batch(b, setup.data_sharding) for b in _batches(data)]
    counter = iter(range(10 ** 9))

    def one_step():
      nonlocal state
      state, metrics = setup.train_step(state, batches[next(counter) % len(batches)])
      jax.block_until_ready(metrics)

    for _ in range(3):
      one_step()
    seconds = median_seconds(one_step, steps)
  t = config.train
  return {'step_s': seconds, 'tokens_per_s': t.batch_size * t.seq_len / seconds,
          'flops_per_token': flops_per_token(model_cfg, t.seq_len, n_params),
          'params': n_params}


def bench_hf_gpt2(config: ml_collections.ConfigDict, steps: int) -> dict[str, float]:
  """The same shape as Hugging Face's PyTorch GPT-2 (sdpa attention), trained with AdamW.

  GPT-2 ties its embeddings as ours does but always keeps biases, so against a config with
  ``use_bias`` off it has slightly more parameters. Its step is forward, backward, global-norm
  clipping and an AdamW update, as ours.
  """
  import torch
  import transformers

  data = loop.load_data(config)
  m, o = config_lib.model_config(config, data.tokenizer.vocab_size), config.optim
  hf_config = transformers.GPT2Config(
      vocab_size=m.vocab_size, n_positions=m.max_len, n_embd=m.d_model, n_layer=m.num_layers,
      n_head=m.num_heads, n_inner=m.ff_dim, activation_function='gelu',
      resid_pdrop=m.dropout, embd_pdrop=m.dropout, attn_pdrop=m.dropout,
      layer_norm_epsilon=m.norm_eps, bos_token_id=0, eos_token_id=0,
      attn_implementation='sdpa')
  torch.manual_seed(0)
  model = transformers.GPT2LMHeadModel(hf_config).train()
  opt = torch.optim.AdamW(model.parameters(), lr=o.lr, betas=(o.b1, o.b2), eps=o.eps,
                          weight_decay=o.weight_decay)
  batches = [(torch.from_numpy(b['inputs']).long(), torch.from_numpy(b['targets']).long())
             for b in _batches(data)]
  counter = iter(range(10 ** 9))

  def one_step():
    inputs, targets = batches[next(counter) % len(batches)]
    opt.zero_grad(set_to_none=True)
    logits = model(input_ids=inputs).logits
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), o.clip_norm or float('inf'))
    opt.step()

  for _ in range(3):
    one_step()
  seconds = median_seconds(one_step, steps)
  t = config.train
  return {'step_s': seconds, 'tokens_per_s': t.batch_size * t.seq_len / seconds}


def run(config: ml_collections.ConfigDict, steps: int = 20, compare_hf: bool = True) -> dict:
  """Measures peak, our step and (if torch is installed) HF's; returns and prints them."""
  peak = matmul_peak()
  ours = bench_llm_jax(config, steps)
  results = {'matmul_peak_flops': peak, 'llm_jax': ours}
  ours['mfu'] = ours['flops_per_token'] * ours['tokens_per_s'] / peak
  if compare_hf:
    hf = bench_hf_gpt2(config, steps)
    hf['mfu'] = ours['flops_per_token'] * hf['tokens_per_s'] / peak
    results['hf_gpt2_torch'] = hf
    results['speed_ratio_llm_jax_over_hf'] = ours['tokens_per_s'] / hf['tokens_per_s']
  m, t = config.model, config.train
  print(f'model: {m.num_layers} layers, {m.num_heads} heads, {m.d_model} wide, '
        f'{ours["params"] / 1e6:.2f}M params; batch {t.batch_size} x context {t.seq_len}; '
        f'{jax.device_count()} x {jax.devices()[0].platform}')
  print(f'matmul peak (f32 2048^3, median): {peak / 1e9:.1f} GFLOP/s')
  print(f'{"":18s}{"step ms (median)":>18s}{"tokens/s":>12s}{"MFU":>8s}')
  for name in ('llm_jax', 'hf_gpt2_torch'):
    if name in results:
      r = results[name]
      print(f'{name:18s}{r["step_s"] * 1e3:18.1f}{r["tokens_per_s"]:12,.0f}{r["mfu"]:8.3f}')
  if compare_hf:
    print(f'llm_jax / HF tokens/s: {results["speed_ratio_llm_jax_over_hf"]:.2f}')
  return results
