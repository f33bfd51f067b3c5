"""T5's span corruption on an encoder-decoder, over the EOS-joined document stream."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from llm_jax import objectives
from llm_jax.tasks.base import Packing, Task


def frame(ids: np.ndarray, eos_id: int) -> dict[str, np.ndarray]:
  """One document closed by EOS; t5x concatenates these and cuts the stream into rows."""
  return {'inputs': np.append(ids, eos_id).astype(np.int32)}


def packed_batch(rows: dict[str, np.ndarray], pad_id: int) -> dict[str, np.ndarray]:
  """Raw token rows for the loss to corrupt, padding set to ``pad_id``."""
  return {'inputs': np.where(rows['inputs_segment_ids'] > 0, rows['inputs'], pad_id)}


@dataclasses.dataclass(frozen=True)
class SpanCorruption(Task):
  name: str = 'span_corruption'
  model_kinds: tuple[str, ...] = ('encoder_decoder',)
  needs: tuple[str, ...] = ('eos', 'pad')

  def loss(self, model, params, batch, rng, train, *, vocab_size: int, eos_id: int,
           pad_id: int, noise: tuple[float, float] = (0.15, 3.0)):
    """``batch['inputs']`` are raw token rows (no EOS, right-padded with ``pad_id``). The
    decoder reads the targets shifted right behind ``pad_id``, T5's decoder start.
    ``noise``: (noise density, mean span length)."""
    noise_rng, dropout_rng = jax.random.split(rng)
    inputs, targets = objectives.span_corruption(noise_rng, batch['inputs'],
                                                 vocab_size=vocab_size, eos_id=eos_id,
                                                 pad_id=pad_id, noise_density=noise[0],
                                                 mean_noise_span_length=noise[1])
    decoder_inputs = jnp.pad(targets[:, :-1], ((0, 0), (1, 0)), constant_values=pad_id)
    input_segments = (inputs != pad_id).astype(jnp.int32)
    target_segments = (targets != pad_id).astype(jnp.int32)
    logits = model.apply({'params': params}, inputs, decoder_inputs, input_segments,
                         target_segments, deterministic=not train,
                         rngs={'dropout': dropout_rng})
    # the decoder's loss is next-token prediction of the targets, padding excluded
    return objectives.causal_lm(logits, targets, target_segments)

  def token_ids(self, vocab_size, special, config):
    s = config.span_corruption
    return {'vocab_size': vocab_size, 'eos_id': special['eos'], 'pad_id': special['pad'],
            'noise': (s.noise_density, s.mean_span_length)}

  def packing(self, special, config):
    """Raw rows long enough to corrupt down to ``train.seq_len`` inputs, as t5x cuts them."""
    s = config.span_corruption
    length = objectives.span_corruption_tokens_length(config.train.seq_len, s.noise_density,
                                                      s.mean_span_length)
    return Packing(functools.partial(frame, eos_id=special['eos']), {'inputs': length},
                   functools.partial(packed_batch, pad_id=special['pad']))

  def errors(self, config):
    s, problems = config.span_corruption, super().errors(config)
    if not 0.0 < s.noise_density < 1.0:
      problems.append(f'span_corruption.noise_density={s.noise_density} must be in (0, 1)')
    if s.mean_span_length < 1.0:
      problems.append(f'span_corruption.mean_span_length={s.mean_span_length} must be >= 1')
    return problems


TASK = SpanCorruption()
