"""The train state and its creation, already sharded, on a mesh."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax

from llm_jax import parallel


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any


@flax.struct.dataclass
class CarriedTrainState(TrainState):
  """Truncated BPTT's state: also the recurrent state each training stream's last batch
  ended in, which the next batch starts from; checkpointed with the rest, so a resumed run
  continues every stream exactly."""

  carry: Any


def _boxed_init(model: nn.Module, tx: optax.GradientTransformation, sample: tuple,
                carry: Callable[[], Any] | None, rng: jax.Array) -> TrainState:
  params = model.init(rng, *sample)['params']
  if carry is None:
    return TrainState(jnp.array(0, jnp.int32), params, tx.init(params))
  return CarriedTrainState(jnp.array(0, jnp.int32), params, tx.init(params), carry())


def abstract(model: nn.Module, tx: optax.GradientTransformation, sample: tuple,
             mesh: jax.sharding.Mesh, carry: Callable[[], Any] | None = None
             ) -> tuple[TrainState, Any]:
  """The state's shapes and dtypes, each carrying its sharding, and the shardings alone.

  ``sample`` holds the model's positional init arguments (``models.sample_inputs``);
  ``carry()`` makes the zero state of a carried (truncated BPTT) run, replicated.
  Nothing is allocated: this is what a restore targets (onto any mesh) and what ``create``
  compiles its output layout from.
  """
  boxed = jax.eval_shape(functools.partial(_boxed_init, model, tx, sample, carry),
                         jax.random.key(0))
  state_shardings = parallel.shardings(boxed, mesh)
  shapes = jax.tree_util.tree_map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      parallel.unbox(boxed), state_shardings)
  return shapes, state_shardings


def create(model: nn.Module, tx: optax.GradientTransformation, rng: jax.Array,
           sample: tuple, mesh: jax.sharding.Mesh,
           carry: Callable[[], Any] | None = None) -> TrainState:
  """Initializes params and optimizer state directly into their shardings.

  ``init`` runs under jit with the sharded layout as its output, so no full copy of the
  parameters ever lives on one device.
  """
  _, state_shardings = abstract(model, tx, sample, mesh, carry)
  init = jax.jit(lambda key: parallel.unbox(_boxed_init(model, tx, sample, carry, key)),
                 out_shardings=state_shardings)
  with parallel.activate(mesh):
    return init(rng)

