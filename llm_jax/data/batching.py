"""Labelled token lists into classifier batches: padding and truncation, length buckets.

(How an objective frames documents into packed rows is its task's, in ``llm_jax.tasks``.)

Pure numpy: no model, no device. Every batch carries the masks that say which slots are
real (``loss_mask`` for LM targets, ``attention_mask`` for classifier inputs).
"""

from __future__ import annotations

import numpy as np

from llm_jax.errors import UsageError


def pad_classification(token_lists: list[np.ndarray], max_len: int, pad_id: int,
                       cls_id: int | None = None, sep_id: int | None = None,
                       length: int | None = None) -> dict[str, np.ndarray]:
  """``[CLS] tokens [SEP]`` rows, truncated to ``max_len`` and padded to ``length``.

  Truncation drops the end of the text, keeping the closing [SEP]. ``length`` (default
  ``max_len``) lets a bucketed batch pad only to its bucket.
  """
  length = length or max_len
  budget = max_len - (cls_id is not None) - (sep_id is not None)
  if budget <= 0:
    raise UsageError(f'max length {max_len} leaves no room for text beside [CLS]/[SEP]')
  inputs = np.full((len(token_lists), length), pad_id, np.int32)
  mask = np.zeros((len(token_lists), length), np.int32)
  for row, ids in enumerate(token_lists):
    pieces = ([cls_id] if cls_id is not None else []) + list(ids[:budget]) + \
        ([sep_id] if sep_id is not None else [])
    inputs[row, :len(pieces)] = pieces
    mask[row, :len(pieces)] = 1
  return {'inputs': inputs, 'attention_mask': mask}


def bucket_length(n: int, max_len: int, multiple: int = 16) -> int:
  """The padded length of a batch whose longest row has ``n`` tokens: the next multiple,
  so a run compiles at most ``max_len / multiple`` shapes."""
  return min(max_len, -(-n // multiple) * multiple)


def bucketed_order(lengths: np.ndarray, order: np.ndarray, batch_size: int,
                   window: int, rng: np.random.Generator) -> np.ndarray:
  """Reorders ``order`` so each batch holds rows of similar length.

  Within each window of ``window`` batches the indices are sorted by length and cut into
  batches, and the batches are shuffled, so padding shrinks while every epoch still visits
  every example once, in an order fixed by the seed.
  """
  span = batch_size * window
  out = []
  for start in range(0, len(order), span):
    chunk = order[start:start + span]
    chunk = chunk[np.argsort(lengths[chunk], kind='stable')]
    batches = [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    full = [b for b in batches if len(b) == batch_size]
    rest = [b for b in batches if len(b) < batch_size]
    rng.shuffle(full)
    out.extend(full + rest)
  return np.concatenate(out) if out else order
