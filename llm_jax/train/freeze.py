"""Which parameters a finetuning run trains, and an optimizer that updates only those.

A spec names the trainable parameters by their '/'-joined paths:

  all                 everything
  head                the classifier head only
  top_k_layers:N      the head, the top N blocks, and what follows them (final norm, pooler)
  bitfit              every bias, and the head
  embeddings_frozen   everything above the embeddings (token, position and type tables,
                      embedding norm, T5's relative bias)
  lora                the LoRA adapters, and the head
  regex:PATTERN       the parameters whose path PATTERN matches (re.search), nothing else

``wrap`` puts the frozen leaves under ``optax.set_to_zero`` in ``optax.multi_transform``
(never a bare ``optax.masked``, which passes their gradients through as updates).
``multi_transform`` masks each group's transformation, so AdamW keeps moments for the
trainable leaves only: a frozen leaf costs no optimizer memory. Labels are computed from the
tree's paths whenever the optimizer sees one, boxed (``init`` of a sharded state) or not.
"""

from __future__ import annotations

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from llm_jax.errors import UsageError
from llm_jax.models import lora, paths

SPECS = ('all', 'head', 'top_k_layers:N', 'bitfit', 'embeddings_frozen', 'lora',
         'regex:PATTERN')


def errors(spec: str, layer_decay: float = 1.0) -> list[str]:
  """The problem with a spec or a layer decay, if any, as a one-line message."""
  kind, _, arg = spec.partition(':')
  if not 0.0 < layer_decay <= 1.0:
    return [f'layer decay must be in (0, 1] (1: none), got {layer_decay}']
  if kind == 'top_k_layers':
    if not arg.isdigit():
      return [f'freeze spec {spec!r}: top_k_layers needs a layer count, e.g. top_k_layers:2']
  elif kind == 'regex':
    try:
      re.compile(arg)
    except re.error as e:
      return [f'freeze spec {spec!r} is not a regex: {e}']
  elif spec not in SPECS:
    return [f'freeze spec {spec!r} is not one of {", ".join(SPECS)}']
  return []


def _is_box(x) -> bool:
  return isinstance(x, nn.Partitioned)


def _shapes(tree) -> dict[str, tuple[int, ...]]:
  """'/'-joined path -> shape of every leaf (flax's Partitioned boxes count as leaves)."""
  flat, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_box)
  return {paths.join(keys): tuple((x.value if _is_box(x) else x).shape) for keys, x in flat}


def _map_paths(fn, tree):
  """``fn(path)`` at every leaf of ``tree``."""
  return jax.tree_util.tree_map_with_path(lambda keys, _: fn(paths.join(keys)), tree,
                                          is_leaf=_is_box)


def _trains(spec: str, layers: int):
  """The predicate ``(path, depth) -> bool`` that ``spec`` makes; ``depth`` is an array for
  a scanned leaf (one per layer), and so is the answer of a layer-wise spec."""
  kind, _, arg = spec.partition(':')

  def head(path, depth):
    return path.split('/')[0] == paths.HEAD

  if kind == 'top_k_layers':
    if int(arg) > layers:
      raise UsageError(f'freeze spec {spec!r}: the model has {layers} layers')
    return lambda path, depth: depth > layers - int(arg)
  return {
      'all': lambda path, depth: True,
      'head': head,
      'bitfit': lambda path, depth: head(path, depth) or path.split('/')[-1] == 'bias',
      'embeddings_frozen': lambda path, depth: np.all(depth > 0),
      'lora': lambda path, depth: head(path, depth) or lora.is_adapter(path),
      'regex': lambda path, depth: re.search(arg, path) is not None,
  }[kind]


def _masks(tree, spec: str) -> dict[str, bool | np.ndarray]:
  """Per path: whether it trains, or for a scanned leaf which of its layers do."""
  problems = errors(spec)
  if problems:
    raise UsageError(problems[0])
  shapes = _shapes(tree)
  if spec == 'lora' and not any(map(lora.is_adapter, shapes)):
    raise UsageError('freeze spec \'lora\' trains the LoRA adapters, and the model has none: '
                     'enable LoRA')
  layers = paths.num_layers(shapes)
  trains = _trains(spec, layers)
  out = {path: np.asarray(trains(path, paths.depth(path, layers))) for path in shapes}
  if not any(m.any() for m in out.values()):
    raise UsageError(f'freeze spec {spec!r} leaves no parameter to train')
  return {path: bool(m) if m.ndim == 0 else (bool(m.all()) if m.all() or not m.any() else m)
          for path, m in out.items()}


def labels(params, spec: str):
  """``'train'`` or ``'freeze'`` for every leaf of ``params`` (boxed, abstract or not); a
  scanned leaf with some layers trainable is ``'train'`` (``wrap`` masks its other layers).

  Raises UsageError when the spec is malformed or would train nothing.
  """
  masks = _masks(params, spec)
  return _map_paths(lambda path: 'train' if np.any(masks[path]) else 'freeze', params)


def count(params, spec: str) -> tuple[int, int]:
  """(trainable, total) parameter counts, for the run to print."""
  masks, shapes = _masks(params, spec), _shapes(params)
  sizes = {path: int(np.prod(shape)) for path, shape in shapes.items()}
  trained = sum(sizes[p] * float(np.mean(masks[p])) for p in shapes)
  return round(trained), sum(sizes.values())


def _layer_array(factor, x):
  """A per-layer factor broadcast over a scanned leaf's other axes."""
  return jnp.asarray(factor, x.dtype).reshape((-1,) + (1,) * (x.ndim - 1))


def trainable_only(tree, spec: str):
  """``tree`` (gradients, say) with its frozen leaves left out (None) and the frozen layers of
  a scanned leaf zeroed. A step that reads every gradient, for a norm, keeps XLA from
  skipping the frozen weights' gradients: on a head-only run that is two thirds of the
  step's FLOPs."""
  masks = _masks(tree, spec)

  def keep(keys, x):
    m = masks[paths.join(keys)]
    if isinstance(m, np.ndarray):
      return x * _layer_array(m, x)
    return x if m else None

  return jax.tree_util.tree_map_with_path(keep, tree, is_leaf=_is_box)


def layer_scales(params, decay: float, spec: str = 'all'):
  """Each leaf's update factor: ``decay ** (layers + 1 - depth)`` (1 for the head and what
  follows the blocks, ``decay`` for the top block, down to the embeddings: ELECTRA's and
  BEiT's layer-wise decay), times 0 on the frozen layers of a scanned leaf; an array over
  the layer axis for scanned leaves."""
  shapes = _shapes(params)
  layers = paths.num_layers(shapes)
  masks = _masks(params, spec)
  return _map_paths(lambda path: np.asarray(masks[path], np.float64) * decay ** (
      layers + 1 - paths.depth(path, layers)), params)


def _scale_by_layer(decay: float, spec: str) -> optax.GradientTransformation:
  def update(updates, state, params=None):
    del params
    scales = layer_scales(updates, decay, spec)
    return jax.tree_util.tree_map(
        lambda u, s: u * (_layer_array(s, u) if np.ndim(s) else jnp.asarray(s, u.dtype)),
        updates, scales), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def _zero_frozen_layers(spec: str) -> optax.GradientTransformation:
  """Zeroes the gradients of a scanned leaf's frozen layers, so that clipping and the
  optimizer's moments see what the per-block layout's trainable leaves give them."""
  def update(updates, state, params=None):
    del params
    masks = _masks(updates, spec)
    return jax.tree_util.tree_map_with_path(
        lambda keys, u: u * _layer_array(masks[paths.join(keys)], u)
        if isinstance(masks[paths.join(keys)], np.ndarray) else u, updates), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def wrap(tx: optax.GradientTransformation, spec: str, layer_decay: float = 1.0,
         scanned: bool = False) -> optax.GradientTransformation:
  """``tx`` (e.g. ``optim.make``'s AdamW, decay mask and clipping included) on the leaves
  ``spec`` trains, zero updates and no state for the rest; with ``layer_decay < 1`` the
  updates (learning rate and weight decay alike) shrink by that factor per layer down.

  ``scanned`` (``model.scan_layers``): a layer-wise spec freezes some layers of each stacked
  leaf; their gradients are zeroed before ``tx`` and their updates after it (weight decay
  included), so they stay bit-identical as separate frozen blocks would."""
  problems = errors(spec, layer_decay)
  if problems:
    raise UsageError(problems[0])
  out = optax.multi_transform({'train': tx, 'freeze': optax.set_to_zero()},
                              lambda params: labels(params, spec))
  layer_wise = spec.partition(':')[0] == 'top_k_layers'
  if scanned and layer_wise:
    return optax.chain(_zero_frozen_layers(spec), out, _scale_by_layer(layer_decay, spec))
  if layer_decay != 1.0:
    out = optax.chain(out, _scale_by_layer(layer_decay, 'all'))
  return out
