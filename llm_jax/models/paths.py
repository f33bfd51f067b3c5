"""Parameter path names: the one owner of how blocks, stacks and the head are called.

A parameter is named by its '/'-joined path (``decoder/block_3/attention/query/kernel``).
Blocks are ``block_<i>`` in each stack, bottom up; with ``model.scan_layers=True`` one
``nn.scan`` holds them all under ``<stack>/blocks/block/...``, each leaf stacked along a
leading layer axis. Freezing by layer, layer-wise learning-rate decay, pretrained loading
and the converters go through here, so both layouts work the same:

* ``depth`` numbers what a path holds: 0 the embeddings, ``i + 1`` block ``i``, ``L + 1``
  what follows the blocks (final norm, pooler, heads); a scanned leaf gets one depth per
  slice of its layer axis.
* ``unscan`` / ``scan`` turn one layout into the other (export, and loading a checkpoint of
  one layout into a model of the other).
"""

from __future__ import annotations

import re

import numpy as np
from flax import traverse_util

HEAD = 'classifier'  # a classifier's output layer, always newly initialized
SCANNED = 'blocks'  # the nn.scan over a stack's blocks ...
SCANNED_BLOCK = 'block'  # ... and the block inside it
EMBEDDINGS = re.compile(
    r'^embed/|^[^/]+/(pos_embedding|type_embedding|relative_bias)$|^[^/]+/embed_norm/')
BLOCK = re.compile(r'(^|/)block_(\d+)/')
SCANNED_PATH = re.compile(rf'(^|/){SCANNED}/{SCANNED_BLOCK}/')


def join(keys) -> str:
  """The '/'-joined path of a ``jax.tree_util`` key path (dict keys, attributes, indices)."""
  return '/'.join(str(getattr(k, 'key', getattr(k, 'name', getattr(k, 'idx', k)))) for k in keys)


def block(i: int) -> str:
  """The module name of block ``i`` of a stack (LSTM layers are named so too)."""
  return f'block_{i}'


def is_scanned(path: str) -> bool:
  return SCANNED_PATH.search(path) is not None


def num_layers(flat_shapes: dict[str, tuple[int, ...]]) -> int:
  """Blocks per stack (the deepest stack's), from ``{path: shape}``."""
  found = [int(m.group(2)) + 1 for m in map(BLOCK.search, flat_shapes) if m]
  found += [shape[0] for path, shape in flat_shapes.items() if is_scanned(path)]
  return max(found, default=0)


def depth(path: str, layers: int) -> int | np.ndarray:
  """0 for the embeddings, ``i + 1`` for block ``i``, ``layers + 1`` for what follows; for a
  scanned leaf the depths ``1 .. layers`` of its slices, as an array."""
  if is_scanned(path):
    return np.arange(1, layers + 1)
  found = BLOCK.search(path)
  if found:
    return int(found.group(2)) + 1
  return 0 if EMBEDDINGS.search(path) else layers + 1


def unscan(params: dict) -> dict:
  """``<stack>/blocks/block/<rest>`` (stacked) -> ``<stack>/block_<i>/<rest>`` per layer."""
  flat = traverse_util.flatten_dict(params, sep='/')
  out = {}
  for path, x in flat.items():
    found = SCANNED_PATH.search(path)
    if not found:
      out[path] = x
      continue
    head, tail = path[:found.start()], path[found.end():]
    for i in range(x.shape[0]):
      out[f'{head}{found.group(1)}{block(i)}/{tail}'] = x[i]
  return traverse_util.unflatten_dict(out, sep='/')


def scan(params: dict) -> dict:
  """``<stack>/block_<i>/<rest>`` -> ``<stack>/blocks/block/<rest>`` stacked bottom up."""
  flat = traverse_util.flatten_dict(params, sep='/')
  out, stacked = {}, {}
  for path, x in flat.items():
    found = BLOCK.search(path)
    if not found:
      out[path] = x
      continue
    key = f'{path[:found.start()]}{found.group(1)}{SCANNED}/{SCANNED_BLOCK}/{path[found.end():]}'
    stacked.setdefault(key, {})[int(found.group(2))] = x
  for key, layers in stacked.items():
    out[key] = np.stack([np.asarray(layers[i]) for i in range(len(layers))])
  return traverse_util.unflatten_dict(out, sep='/')


def match_layout(source: dict, like: dict) -> dict:
  """``source`` in the layout of ``like`` (scanned or per block), for loading one into the
  other."""
  like_scanned = any(map(is_scanned, traverse_util.flatten_dict(like, sep='/')))
  source_scanned = any(map(is_scanned, traverse_util.flatten_dict(source, sep='/')))
  if like_scanned == source_scanned:
    return source
  return scan(source) if like_scanned else unscan(source)
