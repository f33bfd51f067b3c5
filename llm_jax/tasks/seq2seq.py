"""Text-to-text finetuning of an encoder-decoder (T5): teacher-forced cross-entropy on targets.

Each example is an (input, target) pair of token ids (``data/seq2seq.py``), both closed by
EOS. Pairs are packed first-fit, never cut: an input row of ``train.seq_len`` and a target row
of ``seq2seq.target_len`` hold the same examples under the same segment ids, so that
cross-attention stays inside each example (t5x's packing), and positions restart with each.
The decoder reads each target shifted right behind the pad id, T5's decoder start.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from llm_jax import objectives
from llm_jax.tasks.base import Packing, Task


def frame(encoded: tuple[np.ndarray, np.ndarray], seq_len: int, target_len: int,
          eos_id: int) -> dict[str, np.ndarray]:
  """Input and target, each cut to its row (the end dropped) and closed by EOS."""
  source, target = encoded
  eos = np.array([eos_id], np.int32)
  return {'inputs': np.concatenate([source[:seq_len - 1], eos]).astype(np.int32),
          'targets': np.concatenate([target[:target_len - 1], eos]).astype(np.int32)}


def packed_batch(rows: dict[str, np.ndarray], start_id: int) -> dict[str, np.ndarray]:
  """Packed pairs as the loss reads them; ``decoder_inputs`` start each target with
  ``start_id`` and then read the target's previous token."""
  targets, positions = rows['targets'], rows['targets_positions']
  previous = np.pad(targets[:, :-1], ((0, 0), (1, 0)), constant_values=start_id)
  segments = rows['targets_segment_ids']
  decoder_inputs = np.where((positions == 0) | (segments == 0), start_id, previous)
  return {'inputs': rows['inputs'], 'input_segments': rows['inputs_segment_ids'],
          'input_positions': rows['inputs_positions'], 'decoder_inputs': decoder_inputs,
          'targets': targets, 'target_segments': segments, 'target_positions': positions}


def logits(model, params, batch, rng=None, train: bool = False):
  return model.apply({'params': params}, batch['inputs'], batch['decoder_inputs'],
                     batch['input_segments'], batch['target_segments'],
                     batch.get('input_positions'), batch.get('target_positions'),
                     deterministic=not train, rngs={'dropout': rng} if train else {})


@dataclasses.dataclass(frozen=True)
class Seq2Seq(Task):
  name: str = 'seq2seq'
  model_kinds: tuple[str, ...] = ('encoder_decoder',)
  needs: tuple[str, ...] = ('eos', 'pad')
  finetunes: bool = True
  reads: str = 'text2text'

  def loss(self, model, params, batch, rng, train):
    """``batch``: ``packed_batch``'s features (an unpacked row is one segment)."""
    out = logits(model, params, batch, rng, train)
    return objectives.causal_lm(out, batch['targets'], batch['target_segments'] > 0)

  def packing(self, special, config):
    lengths = {'inputs': config.train.seq_len, 'targets': config.seq2seq.target_len}
    return Packing(functools.partial(frame, seq_len=lengths['inputs'],
                                     target_len=lengths['targets'], eos_id=special['eos']),
                   lengths, functools.partial(packed_batch, start_id=special['pad']),
                   whole=True)


TASK = Seq2Seq()
