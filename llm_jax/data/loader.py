"""grain pipelines from record sources to numpy batches, deterministic and resumable.

Every training pipeline is a grain dataset whose order is fixed by the seed and the epoch,
sharded by process, and whose iterator state (a small JSON dict) is saved in each
checkpoint, so a resumed run sees exactly the batches the uninterrupted run would have.

* ``windows``: nanoGPT's random windows over one token stream; batch ``i`` is a pure
  function of ``(seed, i)``. Each process takes its rows of the global batch, so any number
  of processes trains on the very batches of a one-process run.
* ``streams``: truncated BPTT's parallel streams over one token stream (``lm.Streams``);
  batch ``i`` is a pure function of ``i``, each process takes its rows.
* ``packed``: documents framed for the objective (``documents``: once, in memory, for a
  split of up to ``IN_MEMORY_DOCUMENTS``), shuffled per epoch, packed into rows by grain's
  concat-then-split with segment ids and per-document positions. Each process packs only
  its own documents.
* ``classification``: labelled texts, shuffled per epoch and bucketed by length, padded and
  truncated with attention masks; each process builds its rows of every global batch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import grain
import numpy as np

from llm_jax.data import batching, lm
from llm_jax.data.sources import records, text_of
from llm_jax.data.tokenizers import Tokenizer


def _process_rows(batch: dict[str, np.ndarray], index: int, count: int) -> dict[str, np.ndarray]:
  return {k: np.split(v, count)[index] for k, v in batch.items()}


def windows(ids: np.ndarray, batch_size: int, seq_len: int, seed: int, process_index: int = 0,
            process_count: int = 1) -> grain.MapDataset:
  """Batch ``i`` = ``batch_size`` random windows drawn by ``(seed, i)`` (this process's rows)."""
  return grain.MapDataset.range(1 << 40).map(lambda step: _process_rows(
      lm.random_windows(ids, batch_size, seq_len, seed, step), process_index, process_count))


def streams(ids: np.ndarray, batch_size: int, seq_len: int, process_index: int = 0,
            process_count: int = 1) -> grain.MapDataset:
  """Batch ``i`` = the next ``seq_len`` columns of ``batch_size`` streams (this process's rows)."""
  grid = lm.Streams(ids, batch_size, seq_len)
  return grain.MapDataset.range(1 << 40).map(
      lambda step: _process_rows(grid.batch(step), process_index, process_count))


# A random-access dataset here is an in-memory array cut into batches (windows, streams,
# padded classification batches: 0.2 ms for a Shakespeare batch) or a split's documents
# (``documents``), read where it is asked for.
# grain's default read-ahead (16 threads, 500 elements) cost the training loop 1.2-2.1 ms of
# Python a batch on a 2-core machine, where the prefetching threads take cores from the step.
IN_THE_CALLING_THREAD = grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)


# A split of up to this many documents is framed once and held in memory: read back from
# ArrayRecord one record at a time, parsed and tokenized again at every epoch, a PTB line cost
# 0.4-0.5 ms (BERT-tiny's batch of 135 lines: 70 ms of Python against 18 ms held). Held, the
# 42k framed lines of PTB's train take 17 MiB, framed in 4 s; a larger split streams.
IN_MEMORY_DOCUMENTS = 250_000


def documents(source, frame: Callable[[dict], dict[str, np.ndarray]]) -> grain.MapDataset:
  """A split's documents framed by ``frame`` (record -> token features), by index."""
  if len(source) <= IN_MEMORY_DOCUMENTS:
    return grain.MapDataset.source([frame(record) for record in records(source)])
  return grain.MapDataset.source(source).map(frame)


def packed(documents: grain.MapDataset, lengths: dict[str, int],
           finish: Callable[[dict], dict], batch_size: int, seed: int, *, train: bool = True,
           process_index: int = 0, process_count: int = 1, workers: int = 0,
           whole: bool = False) -> grain.IterDataset:
  """Framed documents (``documents``) packed into rows of ``lengths`` by grain's
  concat-then-split (which adds ``<feature>_segment_ids`` and ``_positions``), batched and
  named by ``finish``. ``whole`` packs first-fit instead: no example is cut across rows,
  which are padded where the next one does not fit.

  ``train`` shuffles per epoch and repeats; otherwise one ordered pass whose last batch is
  padded (segment id 0) so that the whole split is evaluated. Documents are read in the
  calling thread (or by ``workers`` processes), not by grain's read-ahead threads: on two
  cores those made a BERT-tiny batch cost 190-230 ms of Python instead of 70 (pitfall 25).
  """
  local_batch = batch_size // process_count
  ds = documents
  if train:
    ds = ds.shuffle(seed=seed).repeat(None)  # shuffle, then repeat: a new order each epoch
  ds = ds[process_index::process_count].to_iter_dataset(IN_THE_CALLING_THREAD)
  if whole:
    rows = grain.experimental.FirstFitPackIterDataset(
        ds, length_struct=lengths, num_packing_bins=local_batch, shuffle_bins=False)
  else:
    rows = grain.experimental.ConcatThenSplitIterDataset(ds, length_struct=lengths)
  pad = functools.partial(grain.experimental.batch_and_pad, batch_size=local_batch)
  rows = rows.batch(local_batch, batch_fn=None if train else pad).map(finish)
  if workers:
    from absl import flags  # grain's workers read absl flags, which a library never parses
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()
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
    if isinstance(dataset, grain.MapDataset):
      dataset = dataset.to_iter_dataset(IN_THE_CALLING_THREAD)
    self.iterator = iter(dataset)
    if state is not None:
      self.iterator.set_state(state)

  def __next__(self) -> dict[str, np.ndarray]:
    return next(self.iterator)

  def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
    return self

  def state(self) -> dict[str, Any]:
    return self.iterator.get_state()


def classification(token_lists: list[batching.Example], labels: np.ndarray, batch_size: int,
                   max_len: int, special: dict[str, int], seed: int, *, train: bool = True,
                   bucket: bool = True, process_index: int = 0, process_count: int = 1,
                   pair_style: str = 'bert') -> grain.MapDataset:
  """Padded ``[CLS] text [SEP]`` batches (or sentence pairs, laid out in ``pair_style``, with
  their token types) with attention masks, labels and example masks.

  Training batches follow a per-epoch permutation fixed by ``(seed, epoch)``, bucketed by
  length within windows of 50 batches (padding shrinks, and each batch pads only to the next
  multiple of 16, so a run compiles a handful of shapes). Evaluation is one ordered pass
  whose last batch is padded with ``example_mask`` 0. Batch ``i`` is a pure function of
  ``i``; each process builds its rows of every global batch.
  """
  n = len(token_lists)
  lengths = np.array([min(sum(map(len, t)) + 3 if isinstance(t, tuple) else len(t) + 2,
                          max_len) for t in token_lists])
  per_epoch = n // batch_size if train else -(-n // batch_size)
  local = batch_size // process_count

  @functools.lru_cache(maxsize=2)
  def epoch_order(epoch: int) -> np.ndarray:
    if not train:
      return np.arange(n)
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n)
    return batching.bucketed_order(lengths, order, batch_size, 50, rng) if bucket else order

  def make(index: int) -> dict[str, np.ndarray]:
    epoch, i = divmod(index, per_epoch)
    rows = epoch_order(epoch)[i * batch_size:(i + 1) * batch_size]
    rows = rows[process_index * local:(process_index + 1) * local] if train else rows
    width = batching.bucket_length(int(lengths[rows].max()), max_len) if bucket else max_len
    pad = (local if train else batch_size) - len(rows)  # the last eval batch is short
    texts = [token_lists[r] for r in rows]
    texts += [texts[0] if texts else np.zeros(0, np.int32)] * pad
    batch = batching.pad_classification(texts, max_len, special.get('pad', 0),
                                        special.get('cls'), special.get('sep'), length=width,
                                        pair_style=pair_style)
    batch['labels'] = np.pad(labels[rows], (0, pad))
    batch['example_mask'] = np.pad(np.ones(len(rows), np.float32), (0, pad))
    return batch

  return grain.MapDataset.range(1 << 40 if train else per_epoch).map(make)
