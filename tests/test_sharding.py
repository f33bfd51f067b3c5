"""Meshes of 8 simulated CPU devices train exactly as one device does.

The 8-device runs happen in a subprocess: XLA_FLAGS must be set before JAX starts, and the
rest of the suite runs on one device.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from llm_jax import train
from llm_jax.train import checks
from tests.conftest import REPO, SHAKESPEARE, TINY

pytestmark = [pytest.mark.slow, pytest.mark.multidevice]  # 8 simulated devices, a subprocess

STEPS = 12
OVERRIDES = TINY + ['model.num_heads=4', 'model.vocab_size=72', 'train.batch_size=8',
                   f'train.steps={STEPS}', f'optim.decay_steps={STEPS}', 'train.log_every=1',
                   'train.eval_every=0', 'train.full_eval=false', 'train.checkpoint_every=6']
# data parallelism runs inside 'tensor' and 'cube' (data=2 in each). 'cube' trains all the
# steps; 'fsdp' trains the first half and writes a checkpoint that 'tensor' resumes for the
# second half: each mesh's own losses, and a checkpoint restored onto another mesh, in three
# compiled runs instead of five.
MESHES = {'fsdp': (1, 8, 1), 'tensor': (2, 1, 4), 'cube': (2, 2, 2)}
HALF = STEPS // 2

WORKER = '''
import json, sys
import jax
from flax.traverse_util import flatten_dict
from llm_jax import config as config_lib, train, workdir as workdir_lib
from llm_jax.data import pipeline
from llm_jax.train import checks, setup as setup_lib

overrides, meshes, root = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
out = {}

def mesh_overrides(sizes):
  return [f'parallel.{a}={s}' for a, s in zip(('data', 'fsdp', 'tensor'), sizes)]

def run(name, sizes, extra=()):
  config = checks.load(sys.argv[4], overrides + mesh_overrides(sizes) + list(extra))
  train.run(config, f'{root}/{name}', progress=False)

run('cube', meshes['cube'])
for name, sizes in meshes.items():
  config = checks.load(sys.argv[4], overrides + mesh_overrides(sizes))
  data = pipeline.load(config)
  setup = setup_lib.build(config, config_lib.model_config(config, data.tokenizer.vocab_size))
  with __import__('llm_jax.parallel').parallel.activate(setup.mesh):
    state = setup.init()
  flat = {'/'.join(k): v for k, v in flatten_dict(state.params).items()}
  find = lambda suffix: next(v for k, v in flat.items() if k.endswith(suffix))
  out[name] = {key: {'spec': str(find(path).sharding.spec),
                      'shard': list(find(path).addressable_shards[0].data.shape)}
               for key, path in (('embedding', 'embed/embedding'),
                                 ('query', 'block_0/attention/query/kernel'),
                                 ('wo', 'block_0/mlp/wo/kernel'))}
# a checkpoint written on the fsdp mesh at step 6, resumed on the tensor mesh
run('moved', meshes['fsdp'], [f'train.steps={sys.argv[5]}'])
run('moved', meshes['tensor'])
print(json.dumps(out))
'''


def train_losses(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [r['loss'] for r in map(json.loads, f) if r['split'] == 'train']


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp('meshes')
  train.run(checks.load(SHAKESPEARE, OVERRIDES), str(root / 'single'), progress=False)
  env = dict(os.environ, PYTHONPATH=REPO, XLA_FLAGS='--xla_force_host_platform_device_count=8')
  result = subprocess.run([sys.executable, '-c', WORKER, json.dumps(OVERRIDES),
                           json.dumps(MESHES), str(root), SHAKESPEARE, str(HALF)],
                          env=env, capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  return root, json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize('mesh,steps', [('fsdp', slice(None, HALF)), ('tensor', slice(HALF, None)),
                                        ('cube', slice(None))], ids=list(MESHES))
def test_each_mesh_gives_the_one_device_losses(runs, mesh, steps):
  root, _ = runs
  single = train_losses(root / 'single')
  assert len(single) == STEPS
  trained = train_losses(root / ('cube' if mesh == 'cube' else 'moved'))
  np.testing.assert_allclose(trained[steps], single[steps], rtol=1e-5, atol=1e-5)


def test_parameters_are_sharded_as_the_rules_say(runs):
  _, specs = runs
  # rules: vocab -> tensor, embed -> fsdp, heads -> tensor, mlp -> tensor, kv -> none
  assert specs['cube']['embedding']['spec'] == "P('tensor', 'fsdp')"
  assert specs['cube']['query']['spec'] == "P('fsdp', 'tensor', None)"
  assert specs['cube']['wo']['spec'] == "P('tensor', 'fsdp')"
  # full shapes: embedding (72, 32), query (32, 4, 8), wo (128, 32)
  shards = {mesh: [specs[mesh][p]['shard'] for p in ('embedding', 'query', 'wo')]
            for mesh in MESHES}
  assert shards == {'fsdp': [[72, 4], [4, 4, 8], [128, 4]],
                    'tensor': [[18, 32], [32, 1, 8], [32, 32]],
                    'cube': [[36, 16], [16, 2, 8], [64, 16]]}


def test_a_checkpoint_moves_to_another_mesh_and_training_continues(runs):
  root, _ = runs
  assert max(int(d) for d in os.listdir(root / 'moved' / 'checkpoints')) == STEPS
  moved = train_losses(root / 'moved')
  assert len(moved) == STEPS  # the tensor mesh went on from step 6, not from scratch
  np.testing.assert_allclose(moved, train_losses(root / 'single'), rtol=1e-5, atol=1e-5)
