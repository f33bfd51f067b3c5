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
import optax

from llm_jax.errors import UsageError
from llm_jax.models import lora
from llm_jax.models.heads import HEAD

SPECS = ('all', 'head', 'top_k_layers:N', 'bitfit', 'embeddings_frozen', 'lora',
         'regex:PATTERN')
# the layer-0 group: what comes before the first block
EMBEDDINGS = re.compile(
    r'^embed/|^[^/]+/(pos_embedding|type_embedding|relative_bias)$|^[^/]+/embed_norm/')
BLOCK = re.compile(r'(^|/)block_(\d+)/')


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


def _join(keys) -> str:
  return '/'.join(str(k.key) for k in keys)


def _paths(tree) -> list[str]:
  """'/'-joined paths of the leaves (flax's Partitioned boxes count as leaves)."""
  flat, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_box)
  return [_join(keys) for keys, _ in flat]


def _map_paths(fn, tree):
  """``fn(path)`` at every leaf of ``tree``."""
  return jax.tree_util.tree_map_with_path(lambda keys, _: fn(_join(keys)), tree,
                                          is_leaf=_is_box)


def num_layers(tree) -> int:
  """Blocks per stack: one more than the highest ``block_i``."""
  found = [int(m.group(2)) for m in map(BLOCK.search, _paths(tree)) if m]
  return max(found) + 1 if found else 0


def layer_of(path: str, layers: int) -> int:
  """0 for the embeddings, ``i + 1`` for block ``i``, ``layers + 1`` for what follows
  (final norm, pooler, heads): the depth layer-wise decay and ``top_k_layers`` count."""
  block = BLOCK.search(path)
  if block:
    return int(block.group(2)) + 1
  return 0 if EMBEDDINGS.search(path) else layers + 1


def _trains(spec: str, layers: int):
  """The predicate on paths that ``spec`` makes."""
  kind, _, arg = spec.partition(':')

  def head(path):
    return path.split('/')[0] == HEAD

  if kind == 'top_k_layers':
    if int(arg) > layers:
      raise UsageError(f'freeze spec {spec!r}: the model has {layers} layers')
    return lambda path: layer_of(path, layers) > layers - int(arg)
  return {
      'all': lambda path: True,
      'head': head,
      'bitfit': lambda path: head(path) or path.split('/')[-1] == 'bias',
      'embeddings_frozen': lambda path: layer_of(path, layers) > 0,
      'lora': lambda path: head(path) or lora.is_adapter(path),
      'regex': lambda path: re.search(arg, path) is not None,
  }[kind]


def labels(params, spec: str):
  """``'train'`` or ``'freeze'`` for every leaf of ``params`` (boxed, abstract or not).

  Raises UsageError when the spec is malformed or would train nothing.
  """
  problems = errors(spec)
  if problems:
    raise UsageError(problems[0])
  if spec == 'lora' and not any(map(lora.is_adapter, _paths(params))):
    raise UsageError('freeze spec \'lora\' trains the LoRA adapters, and the model has none: '
                     'enable LoRA')
  trains = _trains(spec, num_layers(params))
  out = _map_paths(lambda path: 'train' if trains(path) else 'freeze', params)
  if 'train' not in jax.tree_util.tree_leaves(out):
    raise UsageError(f'freeze spec {spec!r} leaves no parameter to train')
  return out


def count(params, spec: str) -> tuple[int, int]:
  """(trainable, total) parameter counts, for the run to print."""
  sizes = jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda x: x.size, params))
  kinds = jax.tree_util.tree_leaves(labels(params, spec))
  return sum(s for s, k in zip(sizes, kinds) if k == 'train'), sum(sizes)


def trainable_only(tree, spec: str):
  """``tree`` (gradients, say) with its frozen leaves left out (None). A step that reads
  every gradient, for a norm, keeps XLA from skipping the frozen weights' gradients: on a
  head-only run that is two thirds of the step's FLOPs."""
  return jax.tree_util.tree_map(lambda x, label: x if label == 'train' else None, tree,
                                labels(tree, spec))


def layer_scales(params, decay: float):
  """Each leaf's learning-rate factor ``decay ** (layers + 1 - layer)``: 1 for the head and
  what follows the blocks, ``decay`` for the top block, down to the embeddings (ELECTRA's
  and BEiT's layer-wise decay)."""
  layers = num_layers(params)
  return _map_paths(lambda path: decay ** (layers + 1 - layer_of(path, layers)), params)


def _scale_by_layer(decay: float) -> optax.GradientTransformation:
  def update(updates, state, params=None):
    del params
    return jax.tree_util.tree_map(lambda u, s: u * s, updates,
                                  layer_scales(updates, decay)), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def wrap(tx: optax.GradientTransformation, spec: str,
         layer_decay: float = 1.0) -> optax.GradientTransformation:
  """``tx`` (e.g. ``optim.make``'s AdamW, decay mask and clipping included) on the leaves
  ``spec`` trains, zero updates and no state for the rest; with ``layer_decay < 1`` the
  updates (learning rate and weight decay alike) shrink by that factor per layer down."""
  problems = errors(spec, layer_decay)
  if problems:
    raise UsageError(problems[0])
  out = optax.multi_transform({'train': tx, 'freeze': optax.set_to_zero()},
                              lambda params: labels(params, spec))
  if layer_decay != 1.0:
    out = optax.chain(out, _scale_by_layer(layer_decay))
  return out
