"""One prepared accelerator run: train-step tokens/s, MFU and peak memory, written as a table.

  python experiments/gpu/run.py --chip=h200 --out=experiments/gpu/results.md

For each case (GPT-2 124M and the ~1.1B LLaMA-style `configs/llama.py:1b`, bf16 compute with
float32 master weights, cuDNN flash attention, remat and FSDP as the configs set them) it
compiles the real jitted train step on random tokens, times `--steps` steps after a warm-up
and reports the median step, tokens/s, MFU against the chip's published dense bf16 peak
(`llm_jax.perf.plan.CHIPS`, nanoGPT's FLOPs convention as in `llm-jax bench`) and the device's
peak memory. A case that fails (out of memory, an attention kernel the chip lacks) gets its
one-line error in the table, and the others still run.

`--tiny` runs the same code at CPU sizes with XLA attention (tests/test_gpu_script.py does,
so the script is known to work before GPU time is spent on it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from llm_jax import config as config_lib
from llm_jax import parallel
from llm_jax.perf import bench, plan
from llm_jax.train import checks
from llm_jax.train import setup as setup_lib

# name -> (config spec, overrides, batch, context)
CASES = {
    'gpt2-124m': ('configs/gpt.py:gpt2', ['model.dropout=0.0', 'model.dtype=bfloat16'], 32,
                  1024),
    'llama-1.1b': ('configs/llama.py:1b', [], 8, 2048),
}
TINY = {  # the same code paths at CPU sizes
    'gpt-tiny': ('configs/gpt.py:tiny', ['model.vocab_size=512', 'model.dtype=bfloat16'], 4,
                 64),
    'llama-tiny': ('configs/llama.py:tiny', ['model.vocab_size=512', 'model.dtype=bfloat16',
                                             'model.remat=full'], 4, 64),
}


def measure(spec: str, overrides: list[str], batch: int, context: int, steps: int,
            attention: str, peak_flops: float) -> dict:
  config = checks.load(os.path.join(REPO, spec), overrides + [
      f'model.attention={attention}', f'train.batch_size={batch}', f'train.seq_len={context}',
      f'model.max_len={max(context, 1)}', 'train.steps=1000'])
  model_cfg = config_lib.model_config(config, config.model.vocab_size)
  setup = setup_lib.build(config, model_cfg)
  rng = np.random.RandomState(0)
  with parallel.activate(setup.mesh):
    state = setup.init()
    n_params = sum(x.size for x in jax.tree_util.tree_leaves(state.params))
    if model_cfg.positions == 'learned':
      n_params -= model_cfg.max_len * model_cfg.d_model
    tokens = rng.randint(0, model_cfg.vocab_size, (4, batch, context + 1)).astype(np.int32)
    batches = [parallel.global_batch({'inputs': t[:, :-1], 'targets': t[:, 1:]},
                                     setup.data_sharding) for t in tokens]
    times = []
    for i in range(steps + 2):  # two warm-up steps (the first compiles)
      start = time.perf_counter()
      state, metrics = setup.train_step(state, batches[i % len(batches)])
      jax.block_until_ready(metrics)
      times.append(time.perf_counter() - start)
  step_s = statistics.median(times[2:])
  tokens_per_s = batch * context / step_s
  flops = bench.flops_per_token(model_cfg, context, n_params)
  stats = jax.devices()[0].memory_stats() or {}
  return {'params': n_params, 'step_s': step_s, 'tokens_per_s': tokens_per_s,
          'mfu': flops * tokens_per_s * jax.device_count() ** -1 / peak_flops,
          'peak_memory': stats.get('peak_bytes_in_use'), 'loss': float(metrics['nll_sum'] /
                                                                          metrics['tokens'])}


def table(rows: dict, chip: str, attention: str) -> str:
  device = jax.devices()[0]
  lines = [(f'Device: {jax.device_count()} x {device.device_kind} ({device.platform}), chip '
            f'peak from llm_jax.perf.plan: {chip}; attention: {attention}; '
            f'jax {jax.__version__}'), '',
           '| case | params | batch x context | step (median) | tokens/s | MFU | peak memory |',
           '| --- | --- | --- | --- | --- | --- | --- |']
  for name, r in rows.items():
    if 'error' in r:
      lines.append(f'| {name} | | {r["shape"]} | failed: {r["error"]} | | | |')
      continue
    memory = 'n/a' if r['peak_memory'] is None else f'{r["peak_memory"] / 2 ** 30:.1f} GiB'
    lines.append(f'| {name} | {r["params"] / 1e6:.1f}M | {r["shape"]} | {r["step_s"] * 1e3:.1f} '
                 f'ms | {r["tokens_per_s"]:,.0f} | {r["mfu"]:.3f} | {memory} |')
  return '\n'.join(lines) + '\n'


def main(argv: list[str] | None = None) -> str:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--chip', default='h200', help=f'peak for MFU: one of {", ".join(plan.CHIPS)}')
  p.add_argument('--steps', type=int, default=10)
  p.add_argument('--attention', default='', help='default: cudnn on GPU, else xla')
  p.add_argument('--tiny', action='store_true', help='CPU sizes, to test the script')
  p.add_argument('--out', default='', help='also write the table to this file')
  p.add_argument('--cases', default='', help='comma-separated case names (default: all)')
  args = p.parse_args(argv)
  attention = args.attention or ('cudnn' if jax.default_backend() == 'gpu' else 'xla')
  peak = plan.CHIPS[args.chip][0]
  rows = {}
  cases = TINY if args.tiny else CASES
  chosen = args.cases.split(',') if args.cases else list(cases)
  unknown = sorted(set(chosen) - set(cases))
  if unknown:
    p.error(f'unknown --cases {", ".join(unknown)}; choose from {", ".join(cases)}')
  for name, (spec, overrides, batch, context) in ((n, cases[n]) for n in chosen):
    shape = f'{batch} x {context}'
    try:
      rows[name] = {'shape': shape, **measure(spec, overrides, batch, context, args.steps,
                                              attention, peak)}
    except Exception as e:
      rows[name] = {'shape': shape, 'error': f'{type(e).__name__}: {str(e).splitlines()[0]}'}
    print(name, rows[name], flush=True)
  text = table(rows, args.chip, attention)
  print(text)
  if args.out:
    with open(args.out, 'w') as f:
      f.write(text)
  return text


if __name__ == '__main__':
  main()
