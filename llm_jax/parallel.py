"""Meshes, logical-axis rules and shardings: the same training code from 1 CPU to a pod.

Parameters carry logical axis names; a rules table maps them to the mesh axes ``data``,
``fsdp`` and ``tensor``. Changing the mesh in the config moves every array, not the code.
"""

from __future__ import annotations

import contextlib
import math

import flax.linen as nn
import jax
import ml_collections
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec

from llm_jax.errors import UsageError

MESH_AXES = ('data', 'fsdp', 'tensor')

# logical name -> mesh axes (the t5x/MaxText habit: partitioning is data, not code)
RULES = (
    ('batch', ('data', 'fsdp')),
    ('length', None),
    ('embed', 'fsdp'),
    ('vocab', 'tensor'),
    ('heads', 'tensor'),
    ('kv', None),
    ('mlp', 'tensor'),
    ('layers', None),  # the stacked axis of scanned blocks
)


def errors(parallel: ml_collections.ConfigDict) -> list[str]:
  return [f'parallel.{name} must be a positive size or -1, got {parallel[name]}'
          for name in MESH_AXES if parallel[name] == 0 or parallel[name] < -1]


def mesh_shape(parallel: ml_collections.ConfigDict, n_devices: int) -> list[int]:
  """Sizes of (data, fsdp, tensor) over ``n_devices``; one size may be -1: what remains."""
  sizes = [parallel[name] for name in MESH_AXES]
  named = dict(zip(MESH_AXES, sizes))
  if sizes.count(-1) > 1:
    raise UsageError(f'at most one of parallel.data/fsdp/tensor may be -1, got {named}')
  known = math.prod(s for s in sizes if s != -1)
  if -1 in sizes:
    if n_devices % known:
      raise UsageError(f'{n_devices} devices cannot be split into mesh axes {named}')
    sizes[sizes.index(-1)] = n_devices // known
  if math.prod(sizes) != n_devices:
    raise UsageError(f'mesh {dict(zip(MESH_AXES, sizes))} needs {math.prod(sizes)} devices, '
                     f'there are {n_devices}')
  return sizes


def make_mesh(parallel: ml_collections.ConfigDict) -> jax.sharding.Mesh:
  """A mesh over all devices (of all processes) with the configured axis sizes."""
  sizes = mesh_shape(parallel, jax.device_count())
  # Auto axes: with the Explicit default, logical constraints assert (DESIGN pitfall 1).
  return jax.make_mesh(sizes, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES))


def unbox(tree):
  """Strips flax's Partitioned boxes (``nn.unbox`` fails on eval_shape trees, pitfall 4)."""
  return jax.tree_util.tree_map(lambda x: x.value if isinstance(x, nn.Partitioned) else x, tree,
                                is_leaf=lambda x: isinstance(x, nn.Partitioned))


def shardings(boxed_tree, mesh: jax.sharding.Mesh):
  """The NamedSharding of every leaf of a (boxed, possibly abstract) tree under the rules."""
  specs = nn.get_partition_spec(boxed_tree)
  return nn.logical_to_mesh_sharding(specs, mesh, RULES)


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
  """Batches split their first axis over the data-parallel axes, the rest replicated."""
  spec = nn.logical_to_mesh_axes(('batch',), RULES)
  return NamedSharding(mesh, PartitionSpec(*spec))


def global_batch(batch: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
  """Places this process's rows of a batch as one global array (multi-host safe)."""
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


@contextlib.contextmanager
def activate(mesh: jax.sharding.Mesh):
  """The mesh and the logical rules, for tracing sharded code (not ``with mesh:``, pitfall 2)."""
  with jax.set_mesh(mesh), nn.logical_axis_rules(RULES):
    yield


def initialize_distributed(coordinator: str = '', num_processes: int = 0,
                           process_id: int = -1) -> None:
  """Joins this process to a multi-process run through ``jax.distributed``.

  With a coordinator address, the three values are explicit (two processes on one machine,
  or any cluster without auto-detection); without one, ``jax.distributed.initialize()``
  detects TPU pod slices and SLURM jobs by itself. Cross-process collectives on CPU go
  through gloo (the setting touches no other backend, and must precede any computation).
  """
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  if coordinator:
    jax.distributed.initialize(coordinator, num_processes, process_id)
  else:
    jax.distributed.initialize()
