"""LoRA: low-rank adapters beside chosen projections, and their merge into the base weights.

A targeted ``layers.Dense`` computes ``x W + dropout(x) A B * alpha / rank`` with ``A`` drawn
from a normal and ``B`` zero, so an adapted model starts out as its base model exactly.

Which projections are adapted is a setting of the *top-level* model, not of the
``TransformerConfig``: the model enters ``enabled(config, deterministic)`` around its body,
and every ``Dense`` traced inside asks ``active(self.path)`` whether a target regex matches
its module path (``encoder/block_0/attention/query``). The blocks and stacks stay as they are,
a model without LoRA gets no new parameter, and since the setting is a module attribute a
jitted function is traced again whenever it changes.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
import re
from collections.abc import Iterator
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from llm_jax.models.matmul import project

ADAPTER = 'lora'  # the adapter's name beside a Dense's kernel: '.../query/lora/{a,b}'


@dataclasses.dataclass(frozen=True)
class LoraConfig:
  """Rank, scaling numerator and input dropout of the adapters, and the module paths they
  adapt (regexes searched in the '/'-joined path; Hugging Face PEFT's default for BERT is
  the query and value projections)."""

  rank: int = 8
  alpha: float = 16.0
  dropout: float = 0.0
  targets: tuple[str, ...] = ('attention/(query|value)$',)

  @property
  def scale(self) -> float:
    return self.alpha / self.rank

  def targets_path(self, path: str) -> bool:
    return any(re.search(t, path) for t in self.targets)

  def errors(self) -> list[str]:
    out = []
    if self.rank <= 0:
      out.append(f'lora rank must be positive, got {self.rank}')
    if self.alpha <= 0:
      out.append(f'lora alpha must be positive, got {self.alpha}')
    if not 0.0 <= self.dropout < 1.0:
      out.append(f'lora dropout must be in [0, 1), got {self.dropout}')
    if not self.targets:
      out.append('lora targets is empty: name the projections to adapt, e.g. '
                 '"attention/(query|value)$"')
    for target in self.targets:
      try:
        re.compile(target)
      except re.error as e:
        out.append(f'lora target {target!r} is not a regex: {e}')
    return out


def is_adapter(path: str) -> bool:
  """Whether a '/'-joined parameter path is an adapter's."""
  return f'/{ADAPTER}/' in f'/{path}'


_ACTIVE: contextvars.ContextVar[tuple[LoraConfig, bool] | None] = contextvars.ContextVar(
    'llm_jax_lora', default=None)


@contextlib.contextmanager
def enabled(config: LoraConfig | None, deterministic: bool) -> Iterator[None]:
  """Adapts the targeted projections traced inside (none when ``config`` is None);
  ``deterministic`` turns the adapters' dropout off."""
  token = _ACTIVE.set(None if config is None else (config, deterministic))
  try:
    yield
  finally:
    _ACTIVE.reset(token)


def active(path: tuple[str, ...]) -> tuple[LoraConfig, bool] | None:
  """(config, deterministic) if the module at ``path`` is adapted, else None."""
  current = _ACTIVE.get()
  if current is None or not current[0].targets_path('/'.join(path)):
    return None
  return current


class Adapter(nn.Module):
  """``dropout(x) A B * alpha / rank`` with ``A[in..., rank]`` and ``B[rank, features...]``,
  named on the axes of the kernel they adapt (the rank axis is replicated)."""

  config: LoraConfig
  features: tuple[int, ...]
  in_axes: tuple[str | None, ...]
  out_axes: tuple[str | None, ...]
  deterministic: bool
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    n_in = len(self.in_axes)
    in_shape = x.shape[-n_in:]
    rank = self.config.rank
    a = self.param('a', nn.with_logical_partitioning(
        nn.initializers.normal(1.0 / math.sqrt(math.prod(in_shape))), self.in_axes + (None,)),
        in_shape + (rank,), jnp.float32)
    b = self.param('b', nn.with_logical_partitioning(nn.initializers.zeros,
                                                     (None,) + self.out_axes),
                   (rank,) + tuple(self.features), jnp.float32)
    x = nn.Dropout(self.config.dropout)(x, deterministic=self.deterministic)
    h = project(x, a, n_in, self.dtype)
    return project(h, b, 1, self.dtype) * self.config.scale


def merge(params: dict, config: LoraConfig) -> dict:
  """The parameters with every adapter folded into its kernel (``W + A B * alpha / rank``)
  and removed: the base model's tree, for export and ``convert --to-hf``."""
  out = {}
  for name, value in params.items():
    if not isinstance(value, dict):
      out[name] = value
    elif ADAPTER in value:
      adapter, kernel = value[ADAPTER], value['kernel']
      delta = jnp.tensordot(adapter['a'], adapter['b'], axes=1) * config.scale
      out[name] = {k: v for k, v in value.items() if k != ADAPTER}
      out[name]['kernel'] = (kernel + delta).astype(kernel.dtype)
    else:
      out[name] = merge(value, config)
  return out
