"""Loss functions: pure, jit-able, taking and returning arrays only.

Each returns ``(loss, metrics)`` where ``metrics`` holds *sums* and a token count, so that
the training loop and evaluation can add them across steps and batches and divide once:
a mean of per-batch means would weigh a padded remainder batch wrongly.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax


def causal_lm(logits: jax.Array, targets: jax.Array,
              loss_mask: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Next-token cross-entropy, in float32, averaged over the positions ``loss_mask`` keeps.

  Args:
    logits: ``[batch, length, vocab]`` predictions for ``targets``.
    targets: ``[batch, length]`` the token each position must predict.
    loss_mask: ``[batch, length]``, 1 where a position counts (0 on padding); all ones if None.

  Returns:
    The mean loss, and metrics ``nll_sum``, ``correct_sum`` and ``tokens`` (sums over the batch).
  """
  if loss_mask is None:
    loss_mask = jnp.ones(targets.shape, jnp.float32)
  loss_mask = loss_mask.astype(jnp.float32)
  nll = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)
  tokens = loss_mask.sum()
  nll_sum = (nll * loss_mask).sum()
  correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
  metrics = {'nll_sum': nll_sum, 'correct_sum': (correct * loss_mask).sum(), 'tokens': tokens}
  return nll_sum / jnp.maximum(tokens, 1.0), metrics


def summarize(sums: dict[str, jax.Array]) -> dict[str, float]:
  """Turns summed metrics into means: loss, accuracy and perplexity per counted token."""
  tokens = max(float(sums['tokens']), 1.0)
  loss = float(sums['nll_sum']) / tokens
  return {'loss': loss, 'accuracy': float(sums['correct_sum']) / tokens,
          'perplexity': math.exp(min(loss, 700.0)), 'tokens': float(sums['tokens'])}
