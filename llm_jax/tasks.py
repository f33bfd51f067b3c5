"""What a training step optimizes: a model's forward pass joined to an objective.

A task is ``loss(model, params, batch, rng, train) -> (loss, summed metrics)``. The training
loop calls one by the config's ``objective`` name and knows nothing else about models or
objectives; randomness an objective needs (dropout, masking) comes from ``rng``.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax

from llm_jax import objectives

Task = Callable[..., tuple[jax.Array, dict[str, jax.Array]]]


def causal_lm(model: nn.Module, params, batch: dict[str, jax.Array], rng: jax.Array,
              train: bool):
  """Next-token prediction; packed rows pass ``positions`` and ``segment_ids``."""
  logits = model.apply({'params': params}, batch['inputs'], batch.get('positions'),
                       batch.get('segment_ids'), deterministic=not train,
                       rngs={'dropout': rng})
  return objectives.causal_lm(logits, batch['targets'], batch.get('loss_mask'))


TASKS: dict[str, Task] = {'causal_lm': causal_lm}
