"""Language-model batches cut from one token stream: random windows, sequential windows, and
the parallel streams of truncated backpropagation through time.

Training batches are random windows drawn by a generator seeded with ``(seed, stream,
step)``, or the next columns of the streams: a batch is a pure function of the step, so a
resumed run draws exactly the batches the uninterrupted run would have, with no iterator
state to save.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from llm_jax.errors import UsageError

TRAIN_STREAM, EVAL_STREAM = 0, 1


def random_windows(ids: np.ndarray, batch_size: int, seq_len: int, seed: int, step: int,
                   stream: int = TRAIN_STREAM) -> dict[str, np.ndarray]:
  """``batch_size`` windows at uniformly random offsets; targets are inputs shifted by one."""
  if len(ids) <= seq_len:
    raise UsageError(f'a split of {len(ids)} tokens is too short for windows of {seq_len} + 1')
  rng = np.random.default_rng([seed, stream, step])
  starts = rng.integers(0, len(ids) - seq_len, size=batch_size)
  chunk = ids[starts[:, None] + np.arange(seq_len + 1)]
  return {'inputs': chunk[:, :-1], 'targets': chunk[:, 1:]}


def sequential_windows(ids: np.ndarray, batch_size: int, seq_len: int,
                       stride: int = 0) -> Iterator[dict[str, np.ndarray]]:
  """Every target of the split exactly once, in fixed-shape batches.

  Windows start ``stride`` tokens apart (0: ``seq_len``, disjoint windows). With a shorter
  stride they overlap, and each scores only the targets its predecessor did not reach (its
  last ``stride``), so every scored target but the first window's sees at least
  ``seq_len - stride`` tokens before it: the sliding-window evaluation of Transformer LMs,
  where disjoint windows leave a window's first words without context. The last window and
  the last batch are padded, with ``loss_mask`` zero on the padding and on the targets
  already scored, so the whole split is evaluated under one compiled shape.
  """
  stride = stride or seq_len
  if not 0 < stride <= seq_len:
    raise UsageError(f'an evaluation stride of {stride} must be in [1, seq_len={seq_len}]')
  n_targets = len(ids) - 1
  starts = np.arange(0, max(n_targets - seq_len, 0) + stride, stride)
  scored_from = np.concatenate([[0], starts[:-1] + seq_len])  # the first target not yet scored
  for b in range(0, len(starts), batch_size):
    inputs = np.zeros((batch_size, seq_len), np.int32)
    targets = np.zeros((batch_size, seq_len), np.int32)
    mask = np.zeros((batch_size, seq_len), np.float32)
    for row, start in enumerate(starts[b:b + batch_size]):
      n = min(seq_len, n_targets - start)
      inputs[row, :n] = ids[start:start + n]
      targets[row, :n] = ids[start + 1:start + 1 + n]
      mask[row, scored_from[b + row] - start:n] = 1.0
    yield {'inputs': inputs, 'targets': targets, 'loss_mask': mask}


class Streams:
  """A split cut into ``batch_size`` contiguous streams, read ``seq_len`` tokens at a time:
  truncated BPTT as Zaremba et al. (2014) and the TensorFlow PTB tutorial's reader do it.

  Row ``r`` of every batch continues stream ``r`` where the previous batch stopped: the
  stream is ``ids[r * L:(r + 1) * L]`` with ``L = len(ids) // batch_size`` (the remainder is
  dropped), and batch ``i`` of an epoch holds its tokens ``[i * seq_len, (i + 1) * seq_len)``,
  targets one further. An epoch is ``(L - 1) // seq_len`` batches; each starts over from the
  streams' beginnings with ``reset`` = 1, which zeroes the state the model carries.
  """

  def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int):
    length = len(ids) // batch_size
    self.epoch_steps = (length - 1) // seq_len
    if self.epoch_steps < 1:
      raise UsageError(f'a split of {len(ids)} tokens cut into train.batch_size={batch_size} '
                       f'streams leaves {length} tokens per stream, too few for one window of '
                       f'train.seq_len={seq_len} + 1; lower either')
    self.grid = np.asarray(ids[:batch_size * length], np.int32).reshape(batch_size, length)
    self.seq_len = seq_len

  def batch(self, step: int) -> dict[str, np.ndarray]:
    i = step % self.epoch_steps
    start, t = i * self.seq_len, self.seq_len
    return {'inputs': self.grid[:, start:start + t],
            'targets': self.grid[:, start + 1:start + t + 1],
            'reset': np.full((len(self.grid),), float(i == 0), np.float32)}


def stream_windows(ids: np.ndarray, window: int) -> Iterator[dict[str, np.ndarray]]:
  """The whole split as one stream (a batch of one row), ``window`` targets per batch, the
  first with ``reset`` = 1 and the model's state carried through the rest: the paper's
  evaluation (batch 1, the state never reset), whatever ``window`` is, since the state
  carries everything before it. The last window is padded with ``loss_mask`` 0, after every
  real target, so padding never reaches one."""
  for i, batch in enumerate(sequential_windows(ids, 1, window)):
    yield {**batch, 'reset': np.full((1,), float(i == 0), np.float32)}
