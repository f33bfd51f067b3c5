"""Speed of a config beside Hugging Face's PyTorch GPT-2, in one run: the train step
(tokens/s, median step time, MFU) and, with ``--generate``, cached greedy decoding
(ms/token at batch 1 and 8) against the memory-bandwidth bound.

MFU is measured against the matmul peak this machine reaches *now* (a jitted 2048^3 f32
matmul), not a datasheet figure. These machines are noisy (the same step drifts by 30% within
minutes), so the two implementations are timed in alternating rounds and the figures that
mean something are the ratios of their medians.
"""

from __future__ import annotations

import contextlib
import functools
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from llm_jax import config as config_lib
from llm_jax import parallel
from llm_jax.data import pipeline
from llm_jax.models import TransformerConfig
from llm_jax.train import setup as setup_lib


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def alternating_medians(fns: dict[str, Callable[[], object]], repeats: int,
                        rounds: int = 5) -> dict[str, float]:
  """Median seconds of each function, timed in ``rounds`` alternating rounds so that a slow
  minute of the machine falls on all of them alike."""
  times = {name: [] for name in fns}
  per_round = max(1, -(-repeats // rounds))
  for _ in range(rounds):
    for name, fn in fns.items():
      for _ in range(per_round):
        start = time.perf_counter()
        fn()
        times[name].append(time.perf_counter() - start)
  return {name: statistics.median(t) for name, t in times.items()}


def read_bandwidth(megabytes: int = 512, repeats: int = 10) -> float:
  """Bytes/s of a jitted sum over a float32 array much larger than the caches: the rate at
  which decoding can stream weights."""
  x = jnp.ones((megabytes << 18,), jnp.float32)
  total = jax.jit(jnp.sum)
  total(x).block_until_ready()
  return x.nbytes / median_seconds(lambda: total(x).block_until_ready(), repeats)


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


def llm_jax_trainer(config: ml_collections.ConfigDict,
                    scope: contextlib.ExitStack) -> tuple[Callable[[], None], dict]:
  """One jitted train step on real batches (compiled and warmed up), and the model's sizes.

  The step runs inside its mesh's context, entered once into ``scope`` as the training loop
  enters it once: entering it for each step added 1.6 ms to the dispatch of the Shakespeare
  step (2.3 ms without), and a call outside it traces and compiles another program.
  """
  data = pipeline.load(config)
  model_cfg = config_lib.model_config(config, data.tokenizer.vocab_size)
  setup = setup_lib.build(config, model_cfg, data.tokenizer.special)
  scope.enter_context(parallel.activate(setup.mesh))
  state = setup.init()
  batches = [parallel.global_batch(b, setup.data_sharding) for b in _batches(data)]
  n_params = sum(x.size for x in jax.tree_util.tree_leaves(state.params))
  if model_cfg.positions == 'learned':
    n_params -= model_cfg.max_len * model_cfg.d_model
  counter = iter(range(10 ** 9))

  def one_step():
    nonlocal state
    state, metrics = setup.train_step(state, batches[next(counter) % len(batches)])
    jax.block_until_ready(metrics)

  for _ in range(3):
    one_step()
  t = config.train
  return one_step, {'flops_per_token': flops_per_token(model_cfg, t.seq_len, n_params),
                    'params': n_params}


def _hf_gpt2_config(m: TransformerConfig):
  import transformers
  return transformers.GPT2Config(
      vocab_size=m.vocab_size, n_positions=m.max_len, n_embd=m.d_model, n_layer=m.num_layers,
      n_head=m.num_heads, n_inner=m.ff_dim,
      activation_function='gelu_new' if m.mlp == 'gelu_tanh' else 'gelu',
      resid_pdrop=m.dropout, embd_pdrop=m.dropout, attn_pdrop=m.dropout,
      layer_norm_epsilon=m.norm_eps, bos_token_id=0, eos_token_id=0,
      attn_implementation='sdpa')


def hf_gpt2_trainer(config: ml_collections.ConfigDict) -> Callable[[], None]:
  """The same shape as Hugging Face's PyTorch GPT-2 (sdpa attention), trained with AdamW.

  GPT-2 ties its embeddings as ours does but always keeps biases, so against a config with
  ``use_bias`` off it has slightly more parameters. Its step is forward, backward, global-norm
  clipping and an AdamW update, as ours.
  """
  import torch
  import transformers

  data = pipeline.load(config)
  m, o = config_lib.model_config(config, data.tokenizer.vocab_size), config.optim
  torch.manual_seed(0)
  model = transformers.GPT2LMHeadModel(_hf_gpt2_config(m)).train()
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
  return one_step


def run(config: ml_collections.ConfigDict, steps: int = 20, compare_hf: bool = True) -> dict:
  """Measures peak, our step and (if asked) HF's in alternating rounds; returns and prints."""
  peak = matmul_peak()
  with contextlib.ExitStack() as scope:
    ours_step, ours = llm_jax_trainer(config, scope)
    fns = {'llm_jax': ours_step}
    if compare_hf:
      fns['hf_gpt2_torch'] = hf_gpt2_trainer(config)
    medians = alternating_medians(fns, steps)
  t = config.train
  results = {'matmul_peak_flops': peak}
  for name, seconds in medians.items():
    tokens_per_s = t.batch_size * t.seq_len / seconds
    results[name] = {'step_s': seconds, 'tokens_per_s': tokens_per_s,
                     'mfu': ours['flops_per_token'] * tokens_per_s / peak}
  results['llm_jax'].update(ours)
  if compare_hf:
    results['speed_ratio_llm_jax_over_hf'] = medians['hf_gpt2_torch'] / medians['llm_jax']
  m = config.model
  print(f'model: {m.num_layers} layers, {m.num_heads} heads, {m.d_model} wide, '
        f'{ours["params"] / 1e6:.2f}M params, {m.dtype}; batch {t.batch_size} x context '
        f'{t.seq_len}; {jax.device_count()} x {jax.devices()[0].platform}')
  print(f'matmul peak (f32 2048^3, median): {peak / 1e9:.1f} GFLOP/s')
  print(f'{"":18s}{"step ms (median)":>18s}{"tokens/s":>12s}{"MFU":>8s}')
  for name in medians:
    r = results[name]
    print(f'{name:18s}{r["step_s"] * 1e3:18.1f}{r["tokens_per_s"]:12,.0f}{r["mfu"]:8.3f}')
  if compare_hf:
    print(f'llm_jax / HF tokens/s: {results["speed_ratio_llm_jax_over_hf"]:.2f}')
  return results


def llm_jax_decoder(model_cfg: TransformerConfig, batch: int, prompt_len: int,
                    new_tokens: int, weights_dtype: str = 'float32') -> Callable[[int], None]:
  """Greedy cached generation of ``n`` tokens after a random prompt, random weights, stored
  in ``weights_dtype``."""
  from llm_jax import models
  from llm_jax.inference import generate

  model = models.build(model_cfg)
  params = jax.jit(lambda key: jax.tree_util.tree_map(
      lambda x: x.astype(weights_dtype),
      model.init(key, jnp.zeros((1, 8), jnp.int32))['params']))(jax.random.key(0))
  prompt = np.random.RandomState(0).randint(0, model_cfg.vocab_size, (batch, prompt_len))

  def run_n(n: int) -> None:
    generate.generate(model, params, prompt, n, jax.random.key(0), temperature=0.0)

  for n in (1, new_tokens):  # compile both lengths
    run_n(n)
  return run_n


def hf_gpt2_decoder(model_cfg: TransformerConfig, batch: int, prompt_len: int,
                    new_tokens: int) -> Callable[[int], None]:
  """Hugging Face ``generate`` (greedy, KV cache, sdpa) on the same shape, random weights."""
  import torch
  import transformers

  torch.manual_seed(0)
  model = transformers.GPT2LMHeadModel(_hf_gpt2_config(model_cfg)).eval()
  prompt = torch.from_numpy(
      np.random.RandomState(0).randint(0, model_cfg.vocab_size, (batch, prompt_len)))

  def run_n(n: int) -> None:
    with torch.inference_mode():
      model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n,
                     min_new_tokens=n, do_sample=False, pad_token_id=0)

  for n in (1, new_tokens):
    run_n(n)
  return run_n


def run_generate(config: ml_collections.ConfigDict, batches: tuple[int, ...] = (1, 8),
                 prompt_len: int = 128, new_tokens: int = 128, compare_hf: bool = True,
                 repeats: int = 3, weights_dtype: str = 'float32') -> dict:
  """ms/token of cached greedy decoding at each batch size, beside HF ``generate``.

  A token's cost is ``(time(prompt + new_tokens) - time(prompt + 1)) / (new_tokens - 1)``,
  which leaves the prefill out. The bound is the parameters' bytes over the measured read
  bandwidth: at batch 1 every weight is streamed from memory once per token. bfloat16
  ``weights_dtype`` stores our weights (and computes) in bf16, half the bytes; HF stays
  float32, the issue's reference.
  """
  if weights_dtype != 'float32':
    config = config.copy_and_resolve_references()
    config.model.dtype = weights_dtype
  model_cfg = config_lib.model_config(config, config.model.vocab_size or 256)
  bandwidth = read_bandwidth()
  results = {'read_bandwidth_bytes_per_s': bandwidth, 'batches': {}}
  for batch in batches:
    runners = {'llm_jax': llm_jax_decoder(model_cfg, batch, prompt_len, new_tokens,
                                          weights_dtype)}
    if compare_hf:
      runners['hf_generate'] = hf_gpt2_decoder(model_cfg, batch, prompt_len, new_tokens)
    fns = {}
    for name, run_n in runners.items():
      fns[f'{name}/1'] = functools.partial(run_n, 1)
      fns[f'{name}/n'] = functools.partial(run_n, new_tokens)
    medians = alternating_medians(fns, repeats, rounds=repeats)
    row = {name: (medians[f'{name}/n'] - medians[f'{name}/1']) / (new_tokens - 1)
           for name in runners}
    results['batches'][batch] = row
    if compare_hf:
      row['ratio'] = row['hf_generate'] / row['llm_jax']
  from llm_jax import models
  shapes = jax.eval_shape(lambda: models.build(model_cfg).init(
      jax.random.key(0), jnp.zeros((1, 8), jnp.int32))['params'])
  n_params = sum(x.size for x in jax.tree_util.tree_leaves(shapes))
  results['weights_dtype'] = weights_dtype
  results['bound_s_per_token'] = n_params * jnp.dtype(weights_dtype).itemsize / bandwidth
  m = config.model
  print(f'decode: {m.num_layers} layers, {m.d_model} wide, {n_params / 1e6:.1f}M '
        f'{weights_dtype} params, {m.dtype} compute; prompt {prompt_len} + {new_tokens} new, '
        f'greedy, KV cache (HF: float32)')
  print(f'read bandwidth: {bandwidth / 1e9:.1f} GB/s; streaming the weights once per token '
        f'bounds batch 1 at {results["bound_s_per_token"] * 1e3:.1f} ms/token')
  print(f'{"batch":>6s}{"llm_jax ms/token":>18s}{"HF ms/token":>14s}{"llm_jax tokens/s":>18s}')
  for batch, row in results['batches'].items():
    hf = f'{row["hf_generate"] * 1e3:14.1f}' if compare_hf else f'{"":14s}'
    print(f'{batch:6d}{row["llm_jax"] * 1e3:18.1f}{hf}{batch / row["llm_jax"]:18,.1f}')
  if compare_hf:
    for batch, row in results['batches'].items():
      print(f'llm_jax / HF decode tokens/s: {row["ratio"]:.2f} (batch {batch})')
  return results
