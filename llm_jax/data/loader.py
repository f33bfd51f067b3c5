"""grain pipelines from record sources to numpy batches, deterministic and resumable.

Every training pipeline is a grain dataset whose order is fixed by the seed and the epoch,
sharded by process, and whose iterator state (a small JSON dict) is saved in each
checkpoint, so a resumed run sees exactly the batches the uninterrupted run would have.

* ``windows``: nanoGPT's random windows over one token stream; batch ``i`` is a pure
  function of ``(seed, i)``. Each process takes its rows of the global batch, so any number
  of processes trains on the very batches of a one-process run.
* ``packed``: documents shuffled per epoch, framed for the objective, packed into rows by
  grain's concat-then-split with segment ids and per-document positions. Each process
  reads only its own documents.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterator

import grain
import numpy as np

from llm_jax.data import lm
from llm_jax.data.sources import text_of
from llm_jax.data.tokenizers import Tokenizer


def _process_rows(batch: dict[str, np.ndarray], index: int, count: int) -> dict[str, np.ndarray]:
  return {k: np.split(v, count)[index] for k, v in batch.items()}


def windows(ids: np.ndarray, batch_size: int, seq_len: int, seed: int, process_index: int = 0,
            process_count: int = 1) -> grain.MapDataset:
  """Batch ``i`` = ``batch_size`` random windows drawn by ``(seed, i)`` (this process's rows)."""
  return grain.MapDataset.range(1 << 40).map(lambda step: _process_rows(
      lm.random_windows(ids, batch_size, seq_len, seed, step), process_index, process_count))


def packed(source, frame: Callable[[dict], dict[str, np.ndarray]], lengths: dict[str, int],
           finish: Callable[[dict], dict], batch_size: int, seed: int, *, train: bool = True,
           process_index: int = 0, process_count: int = 1, workers: int = 0) -> grain.IterDataset:
  """Documents framed by ``frame`` (record -> token features), packed into rows of
  ``lengths`` by grain's concat-then-split (which adds ``<feature>_segment_ids`` and
  ``_positions``), batched and named by ``finish``.

  ``train`` shuffles per epoch and repeats; otherwise one ordered pass whose last batch is
  padded (segment id 0) so that the whole split is evaluated.
  """
  local_batch = batch_size // process_count
  ds = grain.MapDataset.source(source)
  if train:
    ds = ds.shuffle(seed=seed).repeat(None)  # shuffle, then repeat: a new order each epoch
  ds = ds[process_index::process_count].map(frame)
  rows = grain.experimental.ConcatThenSplitIterDataset(ds.to_iter_dataset(),
                                                       length_struct=lengths)
  pad = functools.partial(grain.experimental.batch_and_pad, batch_size=local_batch)
  rows = rows.batch(local_batch, batch_fn=None if train else pad).map(finish)
  if workers:
    rows = rows.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
  return rows


def token_stream(source, tokenizer: Tokenizer, text_field: str = '') -> np.ndarray:
  """A split's records as one token stream (the ``windows`` corpus), EOS between documents
  when the tokenizer has one."""
  eos = tokenizer.special.get('eos')
  pieces = []
  for record in (source[i] for i in range(len(source))):
    pieces.append(tokenizer.encode(text_of(record, text_field)))
    if eos is not None:
      pieces.append(np.array([eos], np.int32))
  return np.concatenate(pieces).astype(np.int32)


class Resumable:
  """An iterator over a grain dataset whose position is a JSON-able dict."""

  def __init__(self, dataset: grain.MapDataset | grain.IterDataset,
               state: dict[str, Any] | None = None):
    dataset = dataset.to_iter_dataset() if isinstance(dataset, grain.MapDataset) else dataset
    self.iterator = iter(dataset)
    if state is not None:
      self.iterator.set_state(state)

  def __next__(self) -> dict[str, np.ndarray]:
    return next(self.iterator)

  def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
    return self

  def state(self) -> dict[str, Any]:
    return self.iterator.get_state()
