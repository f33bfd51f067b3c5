"""llm-jax sweep: a grid runs exactly its grid; a killed sweep resumes to the same trials."""

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

from llm_jax import sweep as sweep_lib
from llm_jax.errors import UsageError
from llm_jax.evaluation import plots
from tests.conftest import REPO
from tests.test_mlp import write_images
from tests.test_plots import png_size


def write_sweep(tmp_path, body: str) -> str:
  """A sweep file over the tiny MLP config of tests/test_mlp.py, on images it writes."""
  images = tmp_path / 'images'
  if not images.exists():
    images.mkdir()
    write_images(images, 'train', 120, 0)
    write_images(images, 't10k', 30, 1)
  path = tmp_path / 'sweep.py'
  path.write_text(f'''
COMMON = dict(
    config={os.path.join(REPO, 'configs/fashion_mnist_mlp.py')!r},
    metric='best_accuracy', direction='maximize',
    overrides=('data.corpus=files', 'data.format=idx',
               'data.files.train={images}/train-images-idx3-ubyte.gz',
               'data.files.test={images}/t10k-images-idx3-ubyte.gz', 'data.val_fraction=0.2',
               'model.mlp_hidden=(8,)', 'train.batch_size=8', 'train.full_eval_batch_size=32'))


def get_sweep(arg=None):
{body}
''')
  return str(path)


def _study(directory):
  return optuna.load_study(study_name='sweep', storage=optuna.storages.JournalStorage(
      optuna.storages.journal.JournalFileBackend(str(directory / sweep_lib.JOURNAL))))


def test_grid_sweep_runs_exactly_its_grid(tmp_path):
  spec = write_sweep(tmp_path, '''
  return dict(COMMON, method='grid', overrides=COMMON['overrides'] + ('train.epochs=1',),
              space={'optim.lr': [0.003, 0.03], 'optim.weight_decay': [0.0, 0.2]},
              prune=True, prune_startup=1)''')  # evaluated at their last step only: none pruned
  summary = sweep_lib.run(spec, str(tmp_path / 'grid'))
  ran = sorted((t['params']['optim.lr'], t['params']['optim.weight_decay'])
               for t in summary['trials'])
  assert ran == [(0.003, 0.0), (0.003, 0.2), (0.03, 0.0), (0.03, 0.2)]
  assert sorted(os.listdir(tmp_path / 'grid/trials')) == ['000', '001', '002', '003']
  for t in summary['trials']:  # each trial's workdir trained under its own overrides
    config = json.loads((tmp_path / 'grid' / t['workdir'] / 'config.json').read_text())
    assert (config['optim']['lr'], config['optim']['weight_decay']) == (
        t['params']['optim.lr'], t['params']['optim.weight_decay'])
    assert t['state'] == 'COMPLETE' and t['steps'] == 12
  values = [t['value'] for t in summary['trials']]
  assert values == sorted(values, reverse=True)  # best first
  csv_rows = (tmp_path / 'grid/summary.csv').read_text().splitlines()
  assert csv_rows[0].startswith('rank,trial,state,best_accuracy,optim.lr,optim.weight_decay')
  assert len(csv_rows) == 5
  out = plots.sweep(str(tmp_path / 'grid'), str(tmp_path / 'sweep.png'), size=(900, 400))
  assert png_size(out) == (900, 400)
  # a rerun finds every trial done and trains nothing
  assert sweep_lib.run(spec, str(tmp_path / 'grid'))['trials'] == summary['trials']
  assert len(_study(tmp_path / 'grid').get_trials()) == 4


RANDOM = '''
  return dict(COMMON, method='random', trials=3, seed=7,
              overrides=COMMON['overrides'] + ('train.epochs=3', 'train.checkpoint_every_epochs=1'),
              space={'optim.lr': ('loguniform', 1e-3, 1e-1),
                     'optim.weight_decay': ('uniform', 0.0, 0.3)})'''


@pytest.mark.slow
def test_killed_sweep_resumes_to_the_uninterrupted_result(tmp_path):
  spec = write_sweep(tmp_path, RANDOM)
  reference = sweep_lib.run(spec, str(tmp_path / 'whole'))
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  proc = subprocess.Popen([sys.executable, '-m', 'llm_jax.cli', 'sweep', '--sweep', spec,
                           '--dir', str(tmp_path / 'cut')], cwd=REPO, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  first_checkpoint = tmp_path / 'cut/trials/001/checkpoints/12'
  deadline = time.time() + 240
  while not first_checkpoint.exists() and proc.poll() is None and time.time() < deadline:
    time.sleep(0.02)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  resumed = sweep_lib.run(spec, str(tmp_path / 'cut'))

  def key(summary):
    return [(t['trial'], t['params'], t['value'], t['steps']) for t in summary['trials']]
  assert key(resumed) == key(reference)
  # the kill left trial 1 running: the resume failed that record and reran its parameters in
  # its own workdir, from its checkpoint (so the figures above equal the uninterrupted ones)
  records = [(t.user_attrs['index'], t.state.name) for t in _study(tmp_path / 'cut').get_trials()]
  assert records == [(0, 'COMPLETE'), (1, 'FAIL'), (1, 'COMPLETE'), (2, 'COMPLETE')]
  with open(tmp_path / 'cut/trials/001/metrics.jsonl') as f:
    steps = [json.loads(line)['step'] for line in f]
  assert steps == sorted(steps) and steps[-1] == 36


def test_bad_sweep_files_are_refused_in_one_line(tmp_path):
  with pytest.raises(UsageError, match="unknown key 'budget'"):
    sweep_lib.load(write_sweep(tmp_path, "  return dict(COMMON, budget=3, space={'a.b': [1]})"))
  with pytest.raises(UsageError, match='a grid searches lists of values'):
    sweep_lib.load(write_sweep(tmp_path, "  return dict(COMMON, method='grid', "
                                         "space={'optim.lr': ('loguniform', 1e-4, 1e-2)})"))
  with pytest.raises(UsageError, match='needs a budget'):
    sweep_lib.load(write_sweep(tmp_path, "  return dict(COMMON, method='tpe', "
                                         "space={'optim.lr': ('uniform', 0.1, 0.2)})"))


def test_a_directory_holds_one_sweep_whose_budget_may_change(tmp_path):
  def sweep(space, trials):
    return sweep_lib.load(write_sweep(tmp_path, f"  return dict(COMMON, trials={trials}, "
                                                f"space={{'optim.lr': {space}}})"))
  directory = str(tmp_path / 'sw')
  sweep_lib._check_same_sweep(directory, sweep([0.1], 2))
  sweep_lib._check_same_sweep(directory, sweep([0.1], 5))  # a larger budget resumes it
  with pytest.raises(UsageError, match=r'another sweep \(space differ'):
    sweep_lib._check_same_sweep(directory, sweep([0.2], 5))
