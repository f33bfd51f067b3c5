import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from llm_jax import cli, parallel, train, workdir
from llm_jax import config as config_lib
from llm_jax.data import pipeline
from llm_jax.train import setup as setup_lib
from llm_jax.workdir.checkpoints import Checkpointer
from tests.conftest import REPO, SHAKESPEARE, TINY


def metrics_without_timing(path):
  with open(path) as f:
    rows = [json.loads(line) for line in f]
  for row in rows:
    row.pop('tokens_per_sec', None)
  return rows


def params_of(path):
  return jax.tree_util.tree_leaves(workdir.load(path).params)


@pytest.mark.slow
def test_tiny_model_overfits_one_batch(tiny_config):
  config = tiny_config('optim.lr=1e-2', 'optim.min_lr=1e-2', 'optim.weight_decay=0.0',
                       'train.steps=150', 'optim.decay_steps=150')
  data = pipeline.load(config)
  setup = setup_lib.build(config, config_lib.model_config(config, data.tokenizer.vocab_size))
  batch = parallel.global_batch(next(data.train(None)), setup.data_sharding)
  losses = []
  with parallel.activate(setup.mesh):
    state = setup.init()
    for _ in range(150):
      state, metrics = setup.train_step(state, batch)
      losses.append(float(metrics['nll_sum'] / metrics['tokens']))
  assert losses[0] > 3.5  # about ln(65) at init
  assert losses[-1] < 0.2


@pytest.mark.slow
def test_run_writes_a_complete_workdir(tiny_config, tmp_path):
  final = train.run(tiny_config(), str(tmp_path), progress=False)
  assert final['step'] == 12 and final['val_full_tokens'] == 111_539
  assert final['train_loss'] < 4.0
  for name in ('config.json', 'tokenizer/spec.json', 'metrics.jsonl', 'clean_report.json'):
    assert (tmp_path / name).exists()
  assert any(f.startswith('events') for f in os.listdir(tmp_path / 'tensorboard'))
  saved = config_lib.from_json((tmp_path / 'config.json').read_text())
  assert saved.to_dict() == tiny_config().to_dict()
  rows = metrics_without_timing(tmp_path / 'metrics.jsonl')
  assert [r['step'] for r in rows if r['split'] == 'val'] == [0, 6, 12]
  assert sorted(int(d) for d in os.listdir(tmp_path / 'checkpoints')) == [6, 12]


@pytest.mark.slow
def test_resume_equals_uninterrupted_bit_for_bit(tiny_config, tmp_path):
  # A run "killed" after its step-6 checkpoint: later checkpoints gone, metrics.jsonl ahead of
  # the checkpoint. The checkpoint falls inside a logging interval, so the partial train-loss
  # sums must carry over too; dropout makes the per-step noise part of what must match.
  config = tiny_config('train.log_every=4', 'train.checkpoint_every=6', 'model.dropout=0.1')
  straight = tmp_path / 'straight'
  train.run(config, str(straight), progress=False)
  resumed = tmp_path / 'resumed'
  shutil.copytree(straight, resumed)
  shutil.rmtree(resumed / 'checkpoints' / '12')
  train.run(config, str(resumed), progress=False)
  assert (metrics_without_timing(resumed / 'metrics.jsonl') ==
          metrics_without_timing(straight / 'metrics.jsonl'))
  for a, b in zip(params_of(str(straight)), params_of(str(resumed))):
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_result(tiny_config, tmp_path):
  overrides = ['train.steps=150', 'optim.decay_steps=150', 'train.log_every=10',
               'train.checkpoint_every=25', 'train.eval_every=25', 'train.full_eval=false']
  killed = tmp_path / 'killed'
  env = dict(os.environ, PYTHONPATH=REPO)
  proc = subprocess.Popen(
      [sys.executable, '-m', 'llm_jax.cli', 'train', f'--config={SHAKESPEARE}',
       f'--workdir={killed}'] + [f'--config.{o}' for o in TINY + overrides],
      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 120
  checkpoints = killed / 'checkpoints'
  while time.time() < deadline:
    done = [d for d in os.listdir(checkpoints) if d.isdigit()] if checkpoints.exists() else []
    if len(done) >= 2:
      break
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL
  assert max(int(d) for d in os.listdir(checkpoints) if d.isdigit()) < 150

  train.run(tiny_config(*overrides), str(killed), progress=False)
  straight = tmp_path / 'straight'
  train.run(tiny_config(*overrides), str(straight), progress=False)
  assert (metrics_without_timing(killed / 'metrics.jsonl') ==
          metrics_without_timing(straight / 'metrics.jsonl'))
  for a, b in zip(params_of(str(straight)), params_of(str(killed))):
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_workdir_of_another_model_is_refused(tiny_config, tmp_path):
  train.run(tiny_config('train.steps=3', 'train.checkpoint_every=3'), str(tmp_path),
            progress=False)
  with pytest.raises(config_lib.ConfigError, match=r'model\.d_model=32 in the workdir, 64 now'):
    train.run(tiny_config('model.d_model=64'), str(tmp_path), progress=False)


def test_using_a_workdir_restores_its_parameters_only(tiny_config, tmp_path, monkeypatch,
                                                      capsys):
  """eval, generate and convert --to-hf read the parameters alone: they still work after the
  workdir's optimizer changed shape (no clipping: another state tree, which a full restore
  could not target), and no full TrainState restore runs."""
  run = tmp_path / 'run'
  train.run(tiny_config('train.steps=2', 'train.checkpoint_every=2', 'train.eval_every=0',
                        'train.full_eval=false', 'model.use_bias=true'),  # GPT-2's biases
            str(run), progress=False)
  saved = json.loads((run / 'config.json').read_text())
  saved['optim']['clip_norm'] = 0.0
  (run / 'config.json').write_text(json.dumps(saved))
  targets = []
  restore_params = Checkpointer.restore_params
  monkeypatch.setattr(Checkpointer, 'restore',
                      lambda *args, **kwargs: pytest.fail('a whole train state was restored'))
  monkeypatch.setattr(Checkpointer, 'restore_params', lambda self, target: (
      targets.append(target) or restore_params(self, target)))

  trained = workdir.load(str(run))
  assert trained.step == 2
  assert set(trained.params) == {'embed', 'decoder'}  # the model's, nothing of AdamW's
  assert all(isinstance(x, np.ndarray) for x in jax.tree_util.tree_leaves(trained.params))
  cli.main(['generate', f'--workdir={run}', '--max-new-tokens=4', '--temperature=0'])
  assert capsys.readouterr().out.strip()
  cli.main(['eval', f'--workdir={run}', '--json'])
  assert json.loads(capsys.readouterr().out)['step'] == 2
  cli.main(['convert', '--to-hf', str(run), '--out', str(tmp_path / 'hf')])
  assert (tmp_path / 'hf' / 'model.safetensors').is_file()
  assert len(targets) == 4 and all(set(t) == {'embed', 'decoder'} for t in targets)
