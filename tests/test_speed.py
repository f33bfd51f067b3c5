"""What the speed work must not break or silently lose: attention implementations agree,
bf16 training tracks float32, the decode benchmark runs beside Hugging Face, the malloc
setting removes the per-step page faults, a command loads what an earlier one compiled, a
profile is written, and the GPU script runs."""

import json
import math
import os
import subprocess
import sys
import textwrap

import jax.numpy as jnp
import numpy as np
import pytest

from llm_jax import config as config_lib
from llm_jax import train
from llm_jax.models import layers
from llm_jax.perf import bench
from llm_jax.train import checks
from llm_jax.train import setup as setup_lib
from tests.conftest import REPO, SHAKESPEARE, TINY


def reference_attention(q, k, v, mask, scale, softcap=0.0):
  """Softmax attention written out in float64 numpy, grouped heads repeated."""
  q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
  groups = q.shape[2] // k.shape[2]
  k, v = np.repeat(k, groups, axis=2), np.repeat(v, groups, axis=2)
  scores = np.einsum('btnh,bsnh->bnts', q, k) * scale
  if softcap:
    scores = softcap * np.tanh(scores / softcap)
  scores = np.where(mask, scores, -np.inf)
  probs = np.exp(scores - scores.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  return np.einsum('bnts,bsnh->btnh', probs, v)


@pytest.mark.parametrize('scale,softcap', [(1 / math.sqrt(8), 0.0), (1.0, 0.0), (1.0, 2.0)],
                         ids=['scaled', 'unscaled', 'softcapped'])
def test_xla_attention_equals_the_written_out_softmax(scale, softcap):
  """The soft-capped case (Gemma 2) is llm_jax's own einsum path, the others jax's kernel."""
  rng = np.random.default_rng(0)
  q = rng.normal(size=(2, 5, 4, 8)).astype(np.float32)
  k, v = (rng.normal(size=(2, 5, 2, 8)).astype(np.float32) for _ in range(2))
  positions = np.broadcast_to(np.arange(5), (2, 5))
  segments = np.array([[1, 1, 1, 2, 2], [1, 1, 1, 1, 0]])
  mask = layers.attention_mask(None, None, True, jnp.asarray(segments), jnp.asarray(segments),
                               jnp.asarray(positions), jnp.asarray(positions))
  out = layers.attend(q, k, v, None, mask, scale, 'xla', softcap)
  expected = reference_attention(q, k, v, np.asarray(mask), scale, softcap)
  valid = segments != 0  # a padding query attends nothing; its output is not used
  np.testing.assert_allclose(np.asarray(out)[valid], expected[valid], atol=1e-5)


def test_cudnn_attention_off_gpu_is_one_line_naming_the_fix():
  config = checks.load(SHAKESPEARE, TINY + ['model.attention=cudnn', 'model.dtype=bfloat16'])
  with pytest.raises(config_lib.ConfigError, match=r'model\.attention="cudnn" needs an NVIDIA GPU'):
    setup_lib.build(config, config_lib.model_config(config, 65))
  with pytest.raises(config_lib.ConfigError, match='computes in bfloat16 or float16'):
    checks.validate(checks.load(SHAKESPEARE, TINY + ['model.attention=cudnn']))
  with pytest.raises(config_lib.ConfigError, match='is not one of'):
    checks.validate(checks.load(SHAKESPEARE, TINY + ['model.attention=flash']))


@pytest.mark.slow
def test_bf16_training_reaches_float32_loss(tmp_path):
  """200 steps of the tiny Shakespeare model: bf16 activations and matmuls (float32 master
  weights, float32 accumulation) end within 0.03 nats of float32, both well below a uniform
  guess."""
  runs = {}
  for dtype in ('float32', 'bfloat16'):
    config = checks.load(SHAKESPEARE, TINY + [
        f'model.dtype={dtype}', 'train.steps=200', 'optim.decay_steps=200',
        'train.eval_every=0', 'train.checkpoint_every=0', 'train.log_every=50',
        'optim.lr=3e-3'])
    train.run(config, str(tmp_path / dtype), progress=False)
    with open(tmp_path / dtype / 'metrics.jsonl') as f:
      rows = [json.loads(line) for line in f]
    runs[dtype] = [r for r in rows if r['split'] == 'val_full'][-1]['loss']
    assert runs[dtype] < math.log(65) - 0.8  # learned well past the uniform guess (4.17)
  assert abs(runs['bfloat16'] - runs['float32']) < 0.03, runs


@pytest.mark.slow
def test_bench_generate_reports_decode_beside_hf_and_the_memory_bound(capsys):
  config = checks.load(os.path.join(REPO, 'configs', 'gpt.py:tiny'), ['model.vocab_size=256'])
  results = bench.run_generate(config, batches=(1, 2), prompt_len=4, new_tokens=6)
  assert results['read_bandwidth_bytes_per_s'] > 1e8 and results['bound_s_per_token'] > 0
  assert set(results['batches']) == {1, 2}
  for row in results['batches'].values():
    assert set(row) == {'llm_jax', 'hf_generate', 'ratio'}
  out = capsys.readouterr().out
  assert 'llm_jax / HF decode tokens/s:' in out and 'bounds batch 1 at' in out


@pytest.mark.slow
def test_bench_generate_with_bf16_weights_halves_the_bound(capsys):
  config = checks.load(os.path.join(REPO, 'configs', 'gpt.py:tiny'), ['model.vocab_size=256'])
  results = bench.run_generate(config, batches=(1,), prompt_len=4, new_tokens=6,
                               compare_hf=False, weights_dtype='bfloat16')
  n_params = results['bound_s_per_token'] * results['read_bandwidth_bytes_per_s'] / 2
  assert results['weights_dtype'] == 'bfloat16' and abs(n_params - round(n_params)) < 1e-3
  assert n_params > 1000
  assert results['batches'][1]['llm_jax'] > 0
  assert 'bfloat16 params, bfloat16 compute' in capsys.readouterr().out


PAGE_FAULTS = textwrap.dedent('''
    import resource, jax, jax.numpy as jnp
    from llm_jax import host
    host.keep_freed_memory()

    def f(x):
      y = jnp.sin(x)  # a 48 MB temporary (over glibc's 32 MiB mmap limit) for the matmul
      return (y @ y[:64].T).sum()

    step = jax.jit(f)
    x = jnp.ones((3072, 4096))
    step(x).block_until_ready()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
      step(x).block_until_ready()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
''')


def test_keeping_freed_memory_removes_most_page_faults_of_each_call():
  faults = {}
  for setting in ('default', 'keep'):
    env = dict(os.environ, LLM_JAX_MALLOC=setting)
    counts = []
    for _ in range(2):  # the fewer of two: the kernel's reclaim of idle pages adds faults
      out = subprocess.run([sys.executable, '-c', PAGE_FAULTS], env=env, capture_output=True,
                           text=True, check=True, cwd=REPO)
      counts.append(int(out.stdout.split()[-1]))
    faults[setting] = min(counts)
  # by default each call faults its temporary in again (12,288 pages of 4 KiB); kept, 1,300
  # to 1,900 faults per call remain alone (25,884 to 38,172 against 252,000 in 20 calls), up
  # to 4,400 beside another busy test worker (87,539 in the CI run of 2026-12-02): kept is
  # held to under half, which no-op keeping (about 252,000) cannot pass
  assert faults['default'] > 20 * 10000 and faults['keep'] < faults['default'] / 2, faults


FREED_HEAP_TOP = textwrap.dedent('''
    import ctypes, resource
    from llm_jax import host
    host.keep_freed_memory()
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    size, count = {size}, {count}

    def touch_and_free():
      blocks = [libc.malloc(size) for _ in range(count)]
      for block in blocks:
        ctypes.memset(block, 1, size)
      for block in reversed(blocks):
        libc.free(block)

    touch_and_free()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    touch_and_free()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
''')


def test_a_freed_heap_top_over_a_gigabyte_is_kept_for_the_next_step():
  """The PTB Transformer's step frees 1.1 to 1.6 GB at the heap's top; with a 1 GiB trim
  threshold glibc returned it and the next step faulted all of it in again (307,000 faults
  here, as many as with glibc's defaults); never trimmed, none."""
  # three blocks of 400 MiB, under the mmap threshold: 1.2 GB freed at the heap's top
  faults = _faults_of_a_second_touch(FREED_HEAP_TOP.format(size=400 << 20, count=3))
  assert faults['default'] > 250_000 and faults['keep'] < 10_000, faults


def test_one_block_over_a_gigabyte_is_kept_for_the_next_step():
  """The 6L/384 Transformer's step at batch 16 allocates a temporary over 1 GiB: with the
  mmap threshold at 1 GiB it was mapped fresh at every step (390,000 faults, 1.1 s of system
  time in a 3.7 s step); under the threshold (now 2 GiB, the most mallopt takes), none."""
  faults = _faults_of_a_second_touch(FREED_HEAP_TOP.format(size=1200 << 20, count=1))
  assert faults['default'] > 250_000 and faults['keep'] < 10_000, faults


def _faults_of_a_second_touch(script: str) -> dict[str, int]:
  faults = {}
  for setting in ('default', 'keep'):
    out = subprocess.run([sys.executable, '-c', script], capture_output=True,
                         text=True, check=True, cwd=REPO,
                         env=dict(os.environ, LLM_JAX_MALLOC=setting))
    faults[setting] = int(out.stdout.split()[-1])
  return faults


COUNTING_CACHE_HITS = textwrap.dedent('''
    import sys, jax.monitoring
    hits = []
    jax.monitoring.register_event_listener(
        lambda event, **_: hits.append(event) if event.endswith('/cache_hits') else None)
    from llm_jax import cli
    cli.main(sys.argv[1:])
    print('cache hits', len(hits))
''')


def test_a_command_loads_the_programs_an_earlier_one_compiled(tmp_path):
  """The CLI keeps compiled programs in $LLM_JAX_CACHE_DIR/jax: a rerun of the same config
  loads its programs from there (BERT-tiny's one-step run: 40 s, then 18 s) and computes
  what the compiled ones did."""
  env = {k: v for k, v in os.environ.items() if k != 'JAX_COMPILATION_CACHE_DIR'}
  env.update(LLM_JAX_CACHE_DIR=str(tmp_path / 'cache'),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0')  # tiny programs compile fast
  short = ['train.steps=3', 'optim.decay_steps=3', 'train.eval_every=0', 'train.full_eval=False']

  def train(name):
    out = subprocess.run(
        [sys.executable, '-c', COUNTING_CACHE_HITS, 'train', f'--config={SHAKESPEARE}',
         f'--workdir={tmp_path / name}', *[f'--config.{o}' for o in TINY + short]],
        env=env, cwd=REPO, capture_output=True, text=True, check=True).stdout
    return json.loads(out[:out.rindex('cache hits')])['train_loss'], int(out.split()[-1])

  first_loss, first_hits = train('first')
  compiled = os.listdir(tmp_path / 'cache' / 'jax')
  assert first_hits == 0 and any(name.startswith('jit_train_step-') for name in compiled)
  loss, hits = train('again')
  assert hits == len(compiled) and loss == first_loss


WHERE_COMPILED_PROGRAMS_GO = 'from llm_jax import host; print(host.keep_compiled_programs())'


def test_jax_own_settings_move_or_turn_off_the_compiled_program_cache(tmp_path):
  env = {k: v for k, v in os.environ.items() if k != 'JAX_COMPILATION_CACHE_DIR'}
  env['LLM_JAX_CACHE_DIR'] = str(tmp_path)
  where = {}
  for case, more in (('default', {}), ('moved', {'JAX_COMPILATION_CACHE_DIR': 'elsewhere'}),
                     ('off', {'JAX_ENABLE_COMPILATION_CACHE': 'false'})):
    where[case] = subprocess.run([sys.executable, '-c', WHERE_COMPILED_PROGRAMS_GO],
                                 env=dict(env, **more), cwd=REPO, capture_output=True,
                                 text=True, check=True).stdout.strip()
  assert where == {'default': str(tmp_path / 'jax'), 'moved': 'elsewhere', 'off': 'None'}


@pytest.mark.slow
def test_train_profile_writes_a_trace_of_the_asked_steps(tmp_path):
  config = checks.load(SHAKESPEARE, TINY)
  train.run(config, str(tmp_path), progress=False, profile=(3, 5))
  traces = [os.path.join(d, f) for d, _, files in os.walk(tmp_path / 'profile') for f in files
            if f.endswith('.trace.json.gz')]
  assert traces


@pytest.mark.slow
def test_gpu_script_runs_its_cases_at_tiny_sizes(tmp_path):
  sys.path.insert(0, os.path.join(REPO, 'experiments', 'gpu'))
  try:
    import run as gpu_run
  finally:
    sys.path.pop(0)
  out = tmp_path / 'table.md'
  # one case: the llama one runs the same code (CI time); the device run takes them all
  text = gpu_run.main(['--tiny', '--steps=2', f'--out={out}', '--chip=h200', '--cases=gpt-tiny'])
  assert out.read_text() == text
  rows = [line for line in text.splitlines() if line.startswith(('| gpt-tiny', '| llama-tiny'))]
  assert len(rows) == 1 and not any('failed' in row for row in rows), text
