"""Faults a long run meets on a shared machine, and bad input a new user gives, through the CLI.

Faults that need a process of their own (a signal, a lock held by another process, a file
size limit, background-thread noise at shutdown) run ``python -m llm_jax.cli`` in a
subprocess and check its exit code (``llm_jax.errors``), its one-line message, a stderr free
of tracebacks, and that the workdir's checkpoints, metrics and config are intact. The rest
(divergence, a second run, bad inputs) go through ``cli.main`` in this process: the same
code path as the command, without paying an interpreter start for each.
"""

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

from llm_jax import cli, errors, train, workdir
from llm_jax.train import checks, loop
from llm_jax.train import setup as setup_lib
from llm_jax.workdir import checkpoints as checkpoints_lib
from llm_jax.workdir.lock import WorkdirLock
from tests.conftest import REPO, SHAKESPEARE, TINY

# TINY, one layer, no evaluation: what is under test is the run's life, not its model
FAULT = TINY + ['model.num_layers=1', 'train.eval_every=0', 'train.full_eval=false',
                'train.checkpoint_every=3']


def overrides(*extra: str) -> list[str]:
  return [f'--config.{o}' for o in FAULT + list(extra)]


def config(*extra: str):
  return checks.load(SHAKESPEARE, FAULT + list(extra))


@pytest.fixture
def env():
  """The subprocesses' environment: this checkout (conftest gives them the session's caches,
  so the tiny model compiles once per session, not once per process)."""
  return dict(os.environ, PYTHONPATH=REPO)


def command(env, *args, **kwargs) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, '-m', 'llm_jax.cli', *args], env=env,
                        capture_output=True, text=True, timeout=300, **kwargs)


def train_args(run, *extra):
  return ['train', f'--config={SHAKESPEARE}', f'--workdir={run}', *overrides(*extra)]


def last_line(stderr: str) -> str:
  return [line for line in stderr.replace('\r', '\n').splitlines() if line.strip()][-1]


def assert_quiet(stderr: str) -> None:
  """No traceback, and none of the background threads' 'Event loop is closed' noise."""
  assert 'Traceback' not in stderr and 'Event loop is closed' not in stderr, stderr[-2000:]


def rows(run) -> list[dict]:
  with open(os.path.join(run, 'metrics.jsonl')) as f:
    out = [json.loads(line) for line in f]
  for row in out:
    row.pop('tokens_per_sec', None)
  return out


def params(run) -> list[np.ndarray]:
  return jax.tree_util.tree_leaves(workdir.load(str(run), 'latest').params)


def files_of(run) -> dict[str, bytes]:
  out = {}
  for root, _, names in os.walk(run):
    for name in names:
      path = os.path.join(root, name)
      with open(path, 'rb') as f:
        out[os.path.relpath(path, run)] = f.read()
  return out


@pytest.mark.slow
def test_sigterm_checkpoints_and_the_resumed_run_equals_the_uninterrupted(env, tmp_path):
  extra = ('train.steps=150', 'optim.decay_steps=150', 'train.checkpoint_every=1000',
           'train.log_every=7', 'model.dropout=0.1')
  run = tmp_path / 'interrupted'
  proc = subprocess.Popen([sys.executable, '-m', 'llm_jax.cli', *train_args(run, *extra)],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 120
  while time.time() < deadline and not any(r['step'] >= 21 for r in (
      rows(run) if (run / 'metrics.jsonl').exists() else [])):
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  _, stderr = proc.communicate(timeout=120)
  assert proc.returncode == errors.INTERRUPTED, stderr[-2000:]
  assert_quiet(stderr)
  message = last_line(stderr)
  assert 'SIGTERM at step' in message and 'rerun the same command to resume' in message
  step = int(message.split('SIGTERM at step ')[1].split()[0])
  assert 21 <= step < 150  # a checkpoint between the periodic ones (every 1000 steps)
  assert [int(d) for d in os.listdir(run / 'checkpoints')] == [step]
  assert max(r['step'] for r in rows(run)) <= step  # the metrics up to it, none beyond

  train.run(config(*extra), str(run), progress=False)
  straight = tmp_path / 'straight'
  train.run(config(*extra), str(straight), progress=False)
  assert rows(run) == rows(straight)
  for a, b in zip(params(straight), params(run)):
    np.testing.assert_array_equal(a, b)


def test_a_second_run_on_a_workdir_in_use_is_refused_and_touches_nothing(trained, capsys):
  """The first run's lock is held here (flock conflicts between two opens in one process as
  between two processes); ``test_the_lock_dies_with_its_process`` uses a real second one."""
  before = files_of(trained)
  holder = WorkdirLock(str(trained)).acquire()
  try:
    with pytest.raises(SystemExit) as exit_info:
      cli.main(train_args(trained, 'train.steps=6'))
  finally:
    holder.release()
  assert exit_info.value.code == errors.USAGE
  err = capsys.readouterr().err
  assert 'is in use by a running job (pid' in last_line(err)
  assert_quiet(err)
  assert {k: v for k, v in files_of(trained).items() if k != 'run.lock'} == {
      k: v for k, v in before.items() if k != 'run.lock'}


def test_the_lock_dies_with_its_process(tmp_path):
  """kill -9 of the holder frees the workdir: no stale lock blocks the next run."""
  code = ('import sys, time; from llm_jax.workdir.lock import WorkdirLock; '
          f'lock = WorkdirLock({str(tmp_path)!r}).acquire(); print("held", flush=True); '
          'time.sleep(60)')
  holder = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=REPO))
  assert holder.stdout.readline().strip() == 'held'
  with pytest.raises(errors.UsageError, match='in use by a running job'):
    WorkdirLock(str(tmp_path)).acquire()
  holder.kill()
  holder.wait()
  holder.stdout.close()
  WorkdirLock(str(tmp_path)).acquire().release()


@pytest.mark.slow
def test_divergence_stops_naming_the_step_and_checkpoints_nothing_non_finite(tmp_path, capsys):
  run = tmp_path / 'run'
  with pytest.raises(SystemExit) as exit_info:
    cli.main(train_args(run, 'optim.lr=1e9', 'train.steps=12', 'train.checkpoint_every=1',
                        'train.log_every=1'))
  assert exit_info.value.code == errors.DIVERGED
  err = capsys.readouterr().err
  assert_quiet(err)
  message = last_line(err)
  assert 'not finite' in message and 'lower optim.lr' in message
  bad = int(message.split('error: step ')[1].split(':')[0])
  saved = sorted(int(d) for d in os.listdir(run / 'checkpoints'))
  assert saved == list(range(1, bad))  # every step before the bad one, none from it on
  assert all(np.isfinite(x).all() for x in params(run))
  assert all(np.isfinite(r['loss']) for r in rows(run))


def test_a_non_finite_step_is_not_applied_and_is_counted(tiny_config):
  config = tiny_config()
  from llm_jax import config as config_lib
  from llm_jax import parallel
  from llm_jax.data import pipeline
  data = pipeline.load(config)
  setup = setup_lib.build(config, config_lib.model_config(config, data.tokenizer.vocab_size))
  batch = parallel.global_batch(next(data.train(None)), setup.data_sharding)
  state = setup.init()
  state, metrics = setup.train_step(state, batch)
  assert float(metrics['skipped']) == 0.0 and np.isfinite(float(metrics['nll_sum']))
  poisoned = jax.tree_util.tree_map(lambda x: x, state.params)
  poisoned['embed']['embedding'] = poisoned['embed']['embedding'] * np.inf
  bad = state.replace(params=poisoned)
  before = jax.device_get((bad.params, bad.opt_state))  # the step donates its input state
  after, metrics = setup.train_step(bad, batch)
  assert float(metrics['skipped']) == 1.0 and float(metrics['nonfinite_loss']) == 1.0
  assert float(metrics['first_skipped_min']) == 1.0 and float(metrics['nll_sum']) == 0.0
  for a, b in zip(jax.tree_util.tree_leaves(before),
                  jax.tree_util.tree_leaves((after.params, after.opt_state))):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # the loop stops past train.skip_nonfinite, naming the first such step and the quantity
  sums = {'skipped': 2.0, 'nonfinite_loss': 2.0, 'nonfinite_grad': 0.0, 'first_skipped_min': 6.0}
  assert loop._nonfinite(sums, 0.0, allowed=3) == (2.0, None)
  total, why = loop._nonfinite(sums, 2.0, allowed=3)
  assert total == 4.0 and why.startswith('step 7: the loss is not finite')


def damage(run) -> None:
  """Step 12 truncated (its parameter files cut short), step 9's commit record deleted."""
  for name in os.listdir(run / 'checkpoints' / '12' / 'state' / 'ocdbt.process_0' / 'd'):
    with open(run / 'checkpoints' / '12' / 'state' / 'ocdbt.process_0' / 'd' / name, 'r+b') as f:
      f.truncate(100)
  os.remove(run / 'checkpoints' / '9' / checkpoints_lib.COMMIT_RECORD)


@pytest.mark.slow
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_complete_one(env, tmp_path):
  straight = tmp_path / 'straight'
  train.run(config('train.steps=15'), str(straight), progress=False)
  run = tmp_path / 'run'
  train.run(config('train.steps=12'), str(run), progress=False)
  damage(run)

  sampled = command(env, 'generate', f'--workdir={run}', '--prompt=ab', '--max-new-tokens=4',
                    '--temperature=0')
  assert sampled.returncode == 0, sampled.stderr[-2000:]
  assert_quiet(sampled.stderr)
  warnings = [line for line in sampled.stderr.splitlines() if line.startswith('warning:')]
  assert len(warnings) == 2  # one line each: the incomplete step, the damaged one
  assert '[9]' in warnings[0] and 'incomplete' in warnings[0]
  assert 'step 12' in warnings[1] and 'damaged' in warnings[1] and 'falling back to step 6' in \
      warnings[1]

  resumed = command(env, *train_args(run, 'train.steps=15'))
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert_quiet(resumed.stderr)
  assert {'step': 6, 'split': 'resume', 'fell_back_from': 12.0} in rows(run)
  assert sorted(os.listdir(run / 'checkpoints')) == ['12', '12.damaged', '15', '9', '9.damaged']
  assert [r for r in rows(run) if r['split'] != 'resume'] == rows(straight)
  for a, b in zip(params(straight), params(run)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_a_full_disk_during_an_async_save_is_one_line_and_earlier_steps_survive(env, tmp_path):
  run = tmp_path / 'run'
  train.run(config('train.steps=6'), str(run), progress=False)
  kept = {step: params(run) for step in (6,)}

  # Each file the child writes is capped, so a checkpoint's data cannot fit. The child sets
  # the cap itself: a preexec_fn would run Python between fork and exec of a threaded parent.
  small_disk = ('import resource, runpy, signal, sys; '
                'signal.signal(signal.SIGXFSZ, signal.SIG_IGN); '
                'resource.setrlimit(resource.RLIMIT_FSIZE, (16_000, 16_000)); '
                'sys.argv = ["llm-jax", *sys.argv[1:]]; '
                'runpy.run_module("llm_jax.cli", run_name="__main__")')
  uncached = {k: v for k, v in env.items() if not k.startswith('JAX_')}  # no cache file cut
  result = subprocess.run([sys.executable, '-c', small_disk, *train_args(run, 'train.steps=12')],
                          env=uncached, capture_output=True, text=True, timeout=300)
  assert result.returncode == errors.USAGE, result.stderr[-2000:]
  assert_quiet(result.stderr)
  message = last_line(result.stderr)
  assert 'checkpoint of step 9 could not be written' in message
  assert 'steps 6, 3 are intact' in message and 'free disk space' in message
  for a, b in zip(kept[6], params(run)):
    np.testing.assert_array_equal(a, b)
  json.loads((run / 'config.json').read_text())


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  run = tmp_path_factory.mktemp('trained') / 'run'
  train.run(config('train.steps=3'), str(run), progress=False)
  return run


def write(path, text: str) -> str:
  path.write_text(text)
  return str(path)


BAD_INPUTS = [
    # (name, argv given tmp_path and the trained workdir, words of the one-line message)
    ('config with a syntax error', lambda p, w: ['train', '--config=' + write(
        p / 'bad.py', 'def get_config(:\n'), f'--workdir={p}/w'], 'bad.py:1: invalid syntax'),
    ('config without get_config', lambda p, w: ['train', '--config=' + write(
        p / 'none.py', 'x = 1\n'), f'--workdir={p}/w'], 'none.py defines no get_config()'),
    ('missing config file', lambda p, w: ['train', f'--config={p}/nope.py', f'--workdir={p}/w'],
     'nope.py does not exist; give a path such as configs/'),
    ('unknown field in a config file', lambda p, w: ['train', '--config=' + write(
        p / 'typo.py', 'from llm_jax import config\ndef get_config():\n  c = config.base()\n'
        '  c.model.dmodel = 1\n  return c\n'), f'--workdir={p}/w'],
     "typo.py:4: unknown config field 'dmodel' (did you mean 'd_model'?); the fields beside "
     'it are attention, attention_softcap, d_ff'),
    ('kv heads not dividing heads', lambda p, w: train_args(p / 'w', 'model.num_kv_heads=3'),
     'num_kv_heads=3; set model.num_kv_heads to one of [1, 2]'),
    ('a workdir that is a file', lambda p, w: train_args(write(p / 'file', 'x')),
     'is a file, not a directory'),
    ('a workdir that cannot be created', lambda p, w: train_args(write(p / 'f', 'x') + '/run'),
     'cannot create --workdir'),
    ('resume with another model', lambda p, w: train_args(w, 'model.d_model=64'),
     'model.d_model=32 in the workdir, 64 now'),
    ('a character outside the vocabulary', lambda p, w: [
        'generate', f'--workdir={w}', '--prompt=a€b'],
     "character '€' (at position 1 of the text) is not in the tokenizer's"),
    ('predict on a language model', lambda p, w: ['predict', f'--workdir={w}', '--text=hi'],
     'holds a causal_lm run, not a classifier'),
    ('predict --input on an empty file', lambda p, w: [
        'predict', f'--workdir={w}', '--input=' + write(p / 'empty.txt', '')],
     'empty.txt holds no text; give a file with one text per line'),
    ('an HF directory without config.json', lambda p, w: [
        'convert', f'--from-hf={p}', f'--out={p}/out'], 'has no config.json'),
    ('an empty data file', lambda p, w: train_args(
        p / 'w', 'data.corpus=files', 'data.files.train=' + write(p / 'e.txt', '')),
     'e.txt is empty'),
]


@pytest.mark.parametrize('name, argv, words', BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_one_line_naming_the_fix(trained, tmp_path, capsys, name, argv, words):
  before = files_of(trained)
  with pytest.raises(SystemExit) as exit_info:
    cli.main(argv(tmp_path, trained))
  assert exit_info.value.code == errors.USAGE
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and words in err, err
  assert {k: v for k, v in files_of(trained).items() if k != 'run.lock'} == {
      k: v for k, v in before.items() if k != 'run.lock'}


def test_a_checkpoint_the_workdir_no_longer_fits_is_refused_by_tensor(trained, tmp_path, capsys):
  """config.json agrees with the new config, but the checkpoints were written by another
  model (here: the tokenizer/ of a larger vocabulary was copied in)."""
  run = tmp_path / 'run'
  shutil.copytree(trained, run)
  spec = json.loads((run / 'tokenizer' / 'spec.json').read_text())
  spec['chars'] = spec['chars'] + ['é']
  (run / 'tokenizer' / 'spec.json').write_text(json.dumps(spec))
  for argv in (train_args(run, 'train.steps=6'), ['generate', f'--workdir={run}']):
    with pytest.raises(SystemExit):
      cli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert 'holds params/embed/embedding as shape (65, 32)' in err, err
    assert "build shape (66, 32); they no longer match the checkpoints" in err


def test_debug_shows_the_traceback(trained, monkeypatch):
  monkeypatch.setenv('LLM_JAX_DEBUG', '1')
  with pytest.raises(errors.UsageError, match='holds a causal_lm run'):
    cli.main(['predict', f'--workdir={trained}', '--text=hi'])


def test_a_first_signal_asks_to_stop_and_a_second_stops_at_once():
  from llm_jax.train import interrupt
  # A process started in the background of a script inherits SIGINT ignored, and the second
  # signal rightly falls back to that; this test starts from Python's own Ctrl-C handler.
  previous = signal.signal(signal.SIGINT, signal.default_int_handler)
  try:
    with interrupt.StopRequests() as stop:
      assert stop.requested(1) is None
      signal.raise_signal(signal.SIGINT)  # Ctrl-C: no KeyboardInterrupt mid-step
      assert stop.requested(2) == 'SIGINT'
      with pytest.raises(KeyboardInterrupt):  # the second gets SIGINT's previous action
        signal.raise_signal(signal.SIGINT)
        time.sleep(1.0)  # the handler interrupts this at once
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
  finally:
    signal.signal(signal.SIGINT, previous)


def test_a_read_only_workdir_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
  """Root ignores permission bits, so the refusal is simulated where the loop asks."""
  real = os.access
  monkeypatch.setattr(os, 'access', lambda path, mode: mode != os.W_OK and real(path, mode))
  with pytest.raises(SystemExit) as exit_info:
    cli.main(train_args(tmp_path / 'run'))
  assert exit_info.value.code == errors.USAGE
  assert 'is not writable; give a path you can write to' in capsys.readouterr().err
