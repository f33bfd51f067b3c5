"""Two processes joined by jax.distributed on 127.0.0.1 train as one process does."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from llm_jax import train
from llm_jax import workdir as workdir_lib
from llm_jax.train import checks
from tests.conftest import REPO, SHAKESPEARE, TINY

pytestmark = [pytest.mark.slow, pytest.mark.multidevice]  # two jax.distributed processes

OVERRIDES = TINY + ['train.batch_size=8', 'train.log_every=2', 'train.eval_every=4',
                    'train.checkpoint_every=4', 'train.full_eval=false', 'model.dropout=0.1']


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def launch(workdir, steps, devices_per_process, processes=2):
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS='cpu',
             XLA_FLAGS=f'--xla_force_host_platform_device_count={devices_per_process}')
  args = [sys.executable, '-m', 'llm_jax.cli', 'train', f'--config={SHAKESPEARE}',
          f'--workdir={workdir}'] + [f'--config.{o}' for o in OVERRIDES + [f'train.steps={steps}']]
  port = free_port()
  procs = [subprocess.Popen(args + ['--distributed', f'--coordinator=127.0.0.1:{port}',
                                    f'--num-processes={processes}', f'--process-id={i}'],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
           for i in range(processes)]
  for p in procs:
    _out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err.decode()[-3000:]


def losses(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [(r['step'], r['split'], r['loss']) for r in map(json.loads, f)]


def test_two_processes_train_and_resume_like_one(tmp_path):
  one, two = str(tmp_path / 'one'), str(tmp_path / 'two')
  # the reference: this one-device process (test_sharding: a mesh trains as one device does)
  train.run(checks.load(SHAKESPEARE, OVERRIDES + ['train.steps=12']), one, progress=False)
  launch(two, 8, devices_per_process=2)  # a 4-device mesh over 2 processes
  assert max(int(d) for d in os.listdir(os.path.join(two, 'checkpoints'))) == 8
  launch(two, 12, devices_per_process=2)  # resumes their joint checkpoint
  expected, got = losses(one), losses(two)
  assert [r[:2] for r in got] == [r[:2] for r in expected]
  np.testing.assert_allclose([r[2] for r in got], [r[2] for r in expected], rtol=1e-5)
  # and the checkpoint written by two processes restores onto this one-device process
  a = jax.tree_util.tree_leaves(workdir_lib.load(one).params)
  b = jax.tree_util.tree_leaves(workdir_lib.load(two).params)
  for x, y in zip(a, b):
    np.testing.assert_allclose(x, y, atol=1e-5)
