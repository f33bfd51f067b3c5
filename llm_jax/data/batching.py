"""Labelled token lists into classifier batches: padding and truncation, length buckets.

(How an objective frames documents into packed rows is its task's, in ``llm_jax.tasks``.)

Pure numpy: no model, no device. Every batch carries the masks that say which slots are
real (``loss_mask`` for LM targets, ``attention_mask`` for classifier inputs).
"""

from __future__ import annotations

import numpy as np

from llm_jax.errors import UsageError

# How a sentence pair is laid out: BERT's ``[CLS] a [SEP] b [SEP]`` with token types 0 then 1,
# or RoBERTa's ``<s> a </s></s> b </s>`` (one token type), as their tokenizers build them.
PAIR_STYLES = ('bert', 'roberta')

Example = np.ndarray | tuple[np.ndarray, np.ndarray]  # a text's ids, or a pair's


def truncate_pair(first: int, second: int, budget: int) -> tuple[int, int]:
  """The lengths a pair keeps under ``budget`` tokens, cut from the longer side first as
  Hugging Face's ``truncation='longest_first'`` cuts them: the shorter side keeps
  ``max(budget - longer, budget // 2)`` of its tokens (all, if fewer), the longer the rest."""
  if first + second <= budget:
    return first, second
  if first > second:
    keep = min(second, max(budget - first, budget // 2))
    return budget - keep, keep
  keep = min(first, max(budget - second, budget // 2))
  return keep, budget - keep


def frame_example(example: Example, max_len: int, cls_id: int | None, sep_id: int | None,
                  pair_style: str = 'bert') -> tuple[list[int], list[int]]:
  """(ids, token types) of one example, special tokens added and truncated to ``max_len``:
  ``[CLS] text [SEP]`` (the end of a long text is dropped), or a pair in ``pair_style``."""
  cls = [cls_id] if cls_id is not None else []
  if not isinstance(example, tuple):
    sep = [sep_id] if sep_id is not None else []
    budget = max_len - len(cls) - len(sep)
    if budget <= 0:
      raise UsageError(f'max length {max_len} leaves no room for text beside [CLS]/[SEP]')
    ids = cls + [int(i) for i in example[:budget]] + sep
    return ids, [0] * len(ids)
  if sep_id is None:
    raise UsageError('sentence pairs are joined by a [SEP] token, and the tokenizer has none: '
                     'use a WordPiece, sentencepiece or Hugging Face tokenizer with one')
  first, second = example
  middle = [sep_id] * (2 if pair_style == 'roberta' else 1)
  budget = max_len - len(cls) - len(middle) - 1
  if budget < 2:
    raise UsageError(f'max length {max_len} leaves no room for a sentence pair')
  n1, n2 = truncate_pair(len(first), len(second), budget)
  head = cls + [int(i) for i in first[:n1]] + middle
  tail = [int(i) for i in second[:n2]] + [sep_id]
  second_type = 1 if pair_style == 'bert' else 0
  return head + tail, [0] * len(head) + [second_type] * len(tail)


def pad_classification(examples: list[Example], max_len: int, pad_id: int,
                       cls_id: int | None = None, sep_id: int | None = None,
                       length: int | None = None,
                       pair_style: str = 'bert') -> dict[str, np.ndarray]:
  """Rows of ``frame_example``, padded to ``length`` (default ``max_len``: a bucketed batch
  pads only to its bucket). Pairs add their ``token_types``.
  """
  length = length or max_len
  inputs = np.full((len(examples), length), pad_id, np.int32)
  mask = np.zeros((len(examples), length), np.int32)
  types = np.zeros((len(examples), length), np.int32)
  for row, example in enumerate(examples):
    ids, row_types = frame_example(example, max_len, cls_id, sep_id, pair_style)
    inputs[row, :len(ids)] = ids
    mask[row, :len(ids)] = 1
    types[row, :len(ids)] = row_types
  batch = {'inputs': inputs, 'attention_mask': mask}
  if examples and isinstance(examples[0], tuple):
    batch['token_types'] = types
  return batch


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
