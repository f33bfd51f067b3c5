"""Turning token lists into model batches: LM examples, padding and truncation, buckets.

Pure numpy: no model, no device. Every batch carries the masks that say which slots are
real (``loss_mask`` for LM targets, ``attention_mask`` for classifier inputs).
"""

from __future__ import annotations

import numpy as np

from llm_jax.errors import UsageError


def lm_example(ids: np.ndarray, eos_id: int | None) -> dict[str, np.ndarray]:
  """One document as next-token pairs.

  With an EOS token the document is framed ``[eos] doc -> doc [eos]``: every token of it is
  predicted (the first from the EOS that opens it) and so is its end, which is how
  perplexity on Penn Treebank counts ``<eos>``. Without one (a char vocabulary) it is the
  plain shift ``doc[:-1] -> doc[1:]``.
  """
  ids = np.asarray(ids, np.int32)
  if eos_id is None:
    return {'inputs': ids[:-1], 'targets': ids[1:]}
  eos = np.array([eos_id], np.int32)
  return {'inputs': np.concatenate([eos, ids]), 'targets': np.concatenate([ids, eos])}


def packed_lm_batch(rows: dict[str, np.ndarray], cross_document: bool) -> dict[str, np.ndarray]:
  """Names grain's packed next-token features as the model reads them.

  Segment id 0 is padding. ``cross_document`` lets attention run across document boundaries
  within a row (a continuous-stream LM, as most PTB results are reported); otherwise
  segment ids and per-document positions keep each document to itself.
  """
  segments = rows['inputs_segment_ids']
  batch = {'inputs': rows['inputs'], 'targets': rows['targets'],
           'loss_mask': (segments > 0).astype(np.float32)}
  if cross_document:
    batch['positions'] = np.broadcast_to(np.arange(segments.shape[-1], dtype=np.int32),
                                         segments.shape).copy()
    batch['segment_ids'] = (segments > 0).astype(np.int32)
  else:
    batch['positions'] = rows['inputs_positions']
    batch['segment_ids'] = segments
  return batch


def mlm_example(ids: np.ndarray, cls_id: int, sep_id: int) -> dict[str, np.ndarray]:
  """One document as BERT reads it: ``[CLS] doc [SEP]`` (the objective masks it later)."""
  return {'inputs': np.concatenate([[cls_id], ids, [sep_id]]).astype(np.int32)}


def packed_mlm_batch(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Packed encoder rows: each document attends only to itself (segment 0 is padding)."""
  return {'inputs': rows['inputs'], 'segment_ids': rows['inputs_segment_ids'],
          'positions': rows['inputs_positions']}


def span_corruption_example(ids: np.ndarray, eos_id: int) -> dict[str, np.ndarray]:
  """One document closed by EOS; t5x concatenates these and cuts the stream into rows."""
  return {'inputs': np.append(ids, eos_id).astype(np.int32)}


def span_corruption_batch(rows: dict[str, np.ndarray], pad_id: int) -> dict[str, np.ndarray]:
  """Raw token rows for T5's span corruption, padding set to ``pad_id``."""
  return {'inputs': np.where(rows['inputs_segment_ids'] > 0, rows['inputs'], pad_id)}


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
