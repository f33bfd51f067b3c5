"""Language-model batches cut from one token stream: random windows and sequential windows.

Training batches are random windows drawn by a generator seeded with ``(seed, stream,
step)``: a batch is a pure function of the step, so a resumed run draws exactly the batches
the uninterrupted run would have, with no iterator state to save.
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


def sequential_windows(ids: np.ndarray, batch_size: int,
                       seq_len: int) -> Iterator[dict[str, np.ndarray]]:
  """Every target of the split exactly once, in fixed-shape batches.

  The last window and the last batch are padded, with ``loss_mask`` zero on the padding, so
  the whole split is evaluated under one compiled shape.
  """
  n_targets = len(ids) - 1
  starts = np.arange(0, n_targets, seq_len)
  for b in range(0, len(starts), batch_size):
    inputs = np.zeros((batch_size, seq_len), np.int32)
    targets = np.zeros((batch_size, seq_len), np.int32)
    mask = np.zeros((batch_size, seq_len), np.float32)
    for row, start in enumerate(starts[b:b + batch_size]):
      n = min(seq_len, n_targets - start)
      inputs[row, :n] = ids[start:start + n]
      targets[row, :n] = ids[start + 1:start + 1 + n]
      mask[row, :n] = 1.0
    yield {'inputs': inputs, 'targets': targets, 'loss_mask': mask}
