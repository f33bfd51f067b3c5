"""How one Hugging Face tensor maps to our parameters, both ways.

A ``Rule`` ties one HF tensor name to one or more of our parameter paths (GPT-2 fuses q, k
and v into one tensor) with a pair of array functions. The same rules import and export, and
exporting the *shapes* of a fresh model (under ``jax.eval_shape``) gives the exact tensor names
and shapes a checkpoint must hold, which is how mismatches are found before anything loads.

Our kernels are ``[in..., out...]`` (``layers.Dense``, heads split out); a torch ``nn.Linear``
stores ``[out, in]`` flat, GPT-2's ``Conv1D`` ``[in, out]`` flat.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

ToOurs = Callable[[jax.Array, Sequence[tuple[int, ...]]], list[jax.Array]]
ToHf = Callable[[Sequence[jax.Array]], jax.Array]


@dataclasses.dataclass(frozen=True)
class Rule:
  hf: str
  ours: tuple[str, ...]
  to_ours: ToOurs
  to_hf: ToHf


def copy(hf: str, ours: str) -> Rule:
  """Same layout on both sides (embedding tables, norm scales, biases of one axis)."""
  return Rule(hf, (ours,), lambda x, shapes: [x.reshape(shapes[0])],
              lambda xs: xs[0])


def flat(hf: str, ours: str) -> Rule:
  """A flat HF vector that is ``[heads, head_dim]`` on our side (attention biases)."""
  return Rule(hf, (ours,), lambda x, shapes: [x.reshape(shapes[0])],
              lambda xs: xs[0].reshape(-1))


def linear(hf: str, ours: str, n_in: int = 1) -> Rule:
  """A torch ``nn.Linear`` weight; our kernel has ``n_in`` input axes."""
  return Rule(hf, (ours,), lambda x, shapes: [x.T.reshape(shapes[0])],
              lambda xs: _matrix(xs[0], n_in).T)


def conv1d(hf: str, ours: str, n_in: int = 1) -> Rule:
  """A GPT-2 ``Conv1D`` weight (already ``[in, out]``)."""
  return Rule(hf, (ours,), lambda x, shapes: [x.reshape(shapes[0])],
              lambda xs: _matrix(xs[0], n_in))


def fused(base: Callable[[str, str], Rule], hf: str, ours: Sequence[str]) -> Rule:
  """Several of our parameters stored side by side along the HF tensor's last axis."""
  part = base(hf, '')

  def to_ours(x, shapes):
    pieces = jnp.split(x, len(ours), axis=-1)
    return [part.to_ours(p, [s])[0] for p, s in zip(pieces, shapes)]

  return Rule(hf, tuple(ours), to_ours,
              lambda xs: jnp.concatenate([part.to_hf([x]) for x in xs], axis=-1))


def _matrix(kernel: jax.Array, n_in: int) -> jax.Array:
  return kernel.reshape(math.prod(kernel.shape[:n_in]), -1)
