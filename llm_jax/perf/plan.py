"""Capacity planning from a config alone: parameters, FLOPs, memory per device, step time.

Nothing is allocated: parameter shapes and their logical axes come from ``jax.eval_shape``
of the real model, so the counts are the model's own, and each tensor's per-device size
follows the same sharding rules the trainer uses.

Conventions, stated because published figures differ on them:

* FLOPs per token = ``6 N`` (forward and backward over every parameter but position tables)
  ``+ 12 L H d_head T`` (attention scores and values counted in full, as nanoGPT and PaLM
  count them, although a causal mask could skip half).
* Memory: float32 parameters, gradients and AdamW's two moments; activations in the model's
  compute dtype, per layer as saved for the backward pass under the remat policy: ``none``
  keeps norms, q/k/v, attention probabilities, the MLP's hidden and outputs; ``save_dots``
  keeps only matmul outputs; ``full`` keeps each block's input (plus one block's worth
  while it is recomputed). Logits are float32.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from llm_jax import config as config_lib
from llm_jax import models, parallel

# Published dense bf16 peak FLOP/s and memory per chip.
CHIPS = {
    'tpu-v4': (275e12, 32e9), 'tpu-v5e': (197e12, 16e9), 'tpu-v5p': (459e12, 95e9),
    'tpu-v6e': (918e12, 32e9), 'a100': (312e12, 80e9), 'h100': (989e12, 80e9),
    'h200': (989e12, 141e9),
}
GiB = 2 ** 30


def _per_device(boxed_leaf, mesh: dict[str, int]) -> int:
  """Elements of one parameter on one device, under the logical-axis rules."""
  rules = dict(parallel.RULES)
  elements = 1
  for size, name in zip(boxed_leaf.value.shape, boxed_leaf.names):
    axes = rules.get(name) if name else None
    axes = (axes,) if isinstance(axes, str) else (axes or ())
    shards = math.prod(mesh[a] for a in axes)
    elements *= -(-size // shards) if size % shards == 0 else size  # indivisible: replicated
  return elements


def activation_elements(cfg, seq_len: int, remat: str, tensor: int) -> float:
  """Activation elements saved per token per layer for the backward pass."""
  d, f, h = cfg.d_model, cfg.ff_dim, cfg.num_heads
  kv = 2 * cfg.kv_heads * cfg.dim_per_head
  mlp_in = (2 if cfg.mlp in ('swiglu', 'geglu') else 1) * f
  if remat == 'full':
    return d
  dots = (d + kv) / tensor + d + mlp_in / tensor + d  # q, k, v; attn out; MLP in; MLP out
  if remat == 'save_dots':
    return dots
  return dots + 2 * d + h * seq_len / tensor + mlp_in / tensor  # norms, probs, activations


def run(config: ml_collections.ConfigDict, chips: int, chip: str, mfu: float = 0.5) -> dict:
  if chip not in CHIPS:
    raise config_lib.ConfigError(f'unknown --chip {chip!r}; known: {", ".join(CHIPS)}')
  peak, memory = CHIPS[chip]
  t = config.train
  mesh = dict(zip(parallel.MESH_AXES, parallel.mesh_shape(config.parallel, chips)))
  cfg = config_lib.model_config(config, config.model.vocab_size or 32_000)
  model = models.build(cfg)
  boxed = jax.eval_shape(lambda: model.init(jax.random.key(0), *models.sample_inputs(cfg)))
  leaves = jax.tree_util.tree_leaves(boxed['params'],
                                     is_leaf=lambda x: isinstance(x, nn.Partitioned))
  n_params = sum(int(np.prod(x.value.shape)) for x in leaves)
  position_params = cfg.max_len * cfg.d_model if cfg.positions == 'learned' else 0
  per_device_params = sum(_per_device(x, mesh) for x in leaves)

  layers = cfg.num_layers + (cfg.decoder_layers if cfg.kind == 'encoder_decoder' else 0)
  flops_token = 6 * (n_params - position_params) + \
      12 * layers * cfg.num_heads * cfg.dim_per_head * t.seq_len
  tokens_step = t.batch_size * t.seq_len
  step_flops = flops_token * tokens_step

  batch_shards = mesh['data'] * mesh['fsdp']
  local_tokens = tokens_step / batch_shards / t.microbatches
  act_bytes = np.dtype(cfg.dtype).itemsize if cfg.dtype != 'bfloat16' else 2
  activations = local_tokens * layers * act_bytes * activation_elements(
      cfg, t.seq_len, config.model.remat, mesh['tensor'])
  activations += local_tokens * 4 * cfg.vocab_size / mesh['tensor']  # float32 logits
  if config.model.remat == 'full':  # one block recomputed at a time
    activations += local_tokens * act_bytes * activation_elements(cfg, t.seq_len, 'none',
                                                                  mesh['tensor'])
  parts = {'params': 4 * per_device_params, 'optimizer': 8 * per_device_params,
           'gradients': 4 * per_device_params, 'activations': activations}
  total = sum(parts.values())
  ideal = step_flops / (chips * peak)
  out = {'chip': chip, 'chips': chips, 'mesh': mesh, 'params': n_params,
         'flops_per_token': flops_token, 'step_flops': step_flops,
         'memory_per_device': parts, 'memory_total': total, 'chip_memory': memory,
         'fits': total <= memory, 'step_s_at_peak': ideal, 'mfu_assumed': mfu,
         'step_s_at_mfu': ideal / mfu, 'tokens_per_s_at_mfu': tokens_step * mfu / ideal}
  _print(out, config)
  return out


def _print(p: dict, config) -> None:
  m, t = config.model, config.train
  print(f'model: {m.kind}, {m.num_layers} layers, d_model {m.d_model}, {m.num_heads} heads '
        f'({m.num_kv_heads or m.num_heads} kv), vocab {m.vocab_size}: '
        f'{p["params"]:,} parameters')
  print(f'batch {t.batch_size} x {t.seq_len} tokens, {t.microbatches} microbatch(es), '
        f'remat {m.remat}, compute {m.dtype}')
  print(f'{p["chips"]} x {p["chip"]}, mesh {p["mesh"]}')
  print(f'FLOPs per token {p["flops_per_token"] / 1e9:.3f} G (6N + 12*L*H*d_head*T, full '
        f'attention); per step {p["step_flops"] / 1e15:.3f} PFLOP')
  print('memory per device:')
  for name, value in p['memory_per_device'].items():
    print(f'  {name:12s}{value / GiB:10.2f} GiB')
  print(f'  {"total":12s}{p["memory_total"] / GiB:10.2f} GiB of {p["chip_memory"] / GiB:.0f} GiB')
  print(f'step time at 100% of peak: {p["step_s_at_peak"] * 1e3:.1f} ms; at MFU '
        f'{p["mfu_assumed"]:.2f}: {p["step_s_at_mfu"] * 1e3:.1f} ms, '
        f'{p["tokens_per_s_at_mfu"]:,.0f} tokens/s')
  if not p['fits']:
    print(f'WARNING: needs {p["memory_total"] / GiB:.1f} GiB per device, the chip has '
          f'{p["chip_memory"] / GiB:.0f} GiB: shard more (parallel.fsdp / tensor), remat, '
          'or use microbatches')
