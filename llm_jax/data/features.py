"""Fixed-width numeric inputs (images, feature vectors) for ``model.kind='mlp'`` classifiers.

Read from IDX files, the format of MNIST and of Fashion-MNIST, its drop-in replacement
(``data.format='idx'``): big-endian, a magic number whose third byte is the element type and
fourth the rank, the dimensions, then the values; ``.gz`` files are read as they are
distributed. An images file's labels are in the file named as MNIST names it (``images`` ->
``labels``, ``idx3`` -> ``idx1``). Pixels (uint8) are scaled to [0, 1], as the Keras MNIST
workflow divides by 255, and each example is flattened to one vector.
"""

from __future__ import annotations

import functools
import gzip
import os

import grain
import numpy as np

from llm_jax.data import sources
from llm_jax.errors import UsageError

# the IDX element-type byte -> numpy's big-endian dtype
IDX_TYPES = {0x08: '>u1', 0x09: '>i1', 0x0B: '>i2', 0x0C: '>i4', 0x0D: '>f4', 0x0E: '>f8'}


def read_idx(path: str) -> np.ndarray:
  """An IDX file as an array of its shape (values in their stored type, native order)."""
  if not os.path.isfile(path):
    raise UsageError(f'IDX file {path} does not exist; set data.files or data.data_dir')
  opener = gzip.open if path.endswith('.gz') else open
  try:
    with opener(path, 'rb') as f:
      raw = f.read()
  except (OSError, EOFError) as e:
    raise UsageError(f'{path}: cannot be read as {"gzip" if path.endswith(".gz") else "a file"}'
                     f' ({e}); is it an IDX file?') from None
  if len(raw) < 4 or raw[0] or raw[1] or raw[2] not in IDX_TYPES:
    raise UsageError(f'{path}: not an IDX file (magic bytes {raw[:4].hex()}; expected 0000, a '
                     'type byte 08-0e and the rank)')
  rank = raw[3]
  dims = tuple(int(d) for d in np.frombuffer(raw, '>u4', rank, 4))
  dtype = np.dtype(IDX_TYPES[raw[2]])
  start = 4 + 4 * rank
  if len(raw) - start != int(np.prod(dims)) * dtype.itemsize:
    raise UsageError(f'{path}: header says shape {dims} ({np.prod(dims) * dtype.itemsize} bytes)'
                     f' but {len(raw) - start} bytes follow; the file is cut or corrupt')
  return np.frombuffer(raw, dtype, offset=start).reshape(dims).astype(dtype.newbyteorder('='))


def labels_path(images: str) -> str:
  """MNIST's naming: ``train-images-idx3-ubyte.gz`` -> ``train-labels-idx1-ubyte.gz``."""
  directory, name = os.path.split(images)
  return os.path.join(directory, name.replace('images', 'labels').replace('idx3', 'idx1'))


def read_examples(images: str) -> tuple[np.ndarray, np.ndarray]:
  """(float32 ``[n, features]``, int32 labels ``[n]``) of an images file and its labels."""
  x, labels = read_idx(images), read_idx(labels_path(images))
  if len(x) != len(labels):
    raise UsageError(f'{images} holds {len(x)} examples but {labels_path(images)} '
                     f'{len(labels)} labels; they must be a pair')
  scale = 1.0 / 255.0 if x.dtype == np.uint8 else 1.0
  return (x.reshape(len(x), -1).astype(np.float32) * scale), labels.astype(np.int32)


def splits(spec: sources.Spec) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Every split of ``spec`` (one images file each); without a validation file,
  ``spec.val_fraction`` of train is held out by ``spec.split_seed``, per class."""
  out = {}
  for split, paths in spec.files:
    if len(paths) != 1:
      raise UsageError(f'data.files.{split}: give one IDX images file, got {len(paths)}')
    out[split] = read_examples(paths[0])
  if 'validation' not in out and spec.val_fraction:
    x, y = out['train']
    train, held = sources.held_out([{'label': int(v), 'row': i} for i, v in enumerate(y)],
                                   spec.val_fraction, spec.split_seed, stratify=True)
    rows = [np.array([r['row'] for r in part], np.int64) for part in (train, held)]
    out['train'], out['validation'] = (x[rows[0]], y[rows[0]]), (x[rows[1]], y[rows[1]])
  return out


def batches(x: np.ndarray, labels: np.ndarray, batch_size: int, seed: int, *, train: bool,
            process_index: int = 0, process_count: int = 1) -> grain.MapDataset:
  """``{'inputs', 'labels', 'example_mask'}`` batches: training follows a per-epoch
  permutation fixed by ``(seed, epoch)`` (the last partial batch dropped), evaluation is one
  ordered pass whose last batch is padded with ``example_mask`` 0."""
  n = len(labels)
  per_epoch = n // batch_size if train else -(-n // batch_size)
  local = batch_size // process_count

  @functools.lru_cache(maxsize=2)
  def order(epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n) if train else np.arange(n)

  def make(index: int) -> dict[str, np.ndarray]:
    epoch, i = divmod(index, per_epoch)
    rows = order(epoch)[i * batch_size:(i + 1) * batch_size]
    rows = rows[process_index * local:(process_index + 1) * local] if train else rows
    pad = (local if train else batch_size) - len(rows)
    padded = np.concatenate([rows, np.zeros(pad, rows.dtype)])
    return {'inputs': x[padded], 'labels': labels[padded],
            'example_mask': np.pad(np.ones(len(rows), np.float32), (0, pad))}

  return grain.MapDataset.range(1 << 40 if train else per_epoch).map(make)
