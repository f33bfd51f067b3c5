"""Shared test helpers: tiny configs that compile in seconds on a 2-core CPU."""

import os

import jax
import numpy as np
import pytest

from llm_jax.train import checks

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAKESPEARE = os.path.join(REPO, 'configs', 'shakespeare_char.py')

TINY = [
    'model.num_layers=2', 'model.num_heads=2', 'model.d_model=32', 'model.max_len=16',
    'train.batch_size=4', 'train.seq_len=16', 'train.steps=12', 'train.log_every=3',
    'train.eval_every=6', 'train.eval_batches=2', 'train.checkpoint_every=6',
    'train.full_eval_batch_size=256', 'optim.warmup_steps=2', 'optim.decay_steps=12',
]

# The files that take longest (121 s down to 67 s of one worker in the CI run of 2026-12-02,
# whose two workers then ran 1810 s of tests in 967 s), run first:
# `pytest -n 2 --dist loadfile` hands files out in collection order, and a long file drawn
# last leaves the other worker idle (longest first bounds the makespan). Update it from
# `--durations=0` when a file's cost changes by much; the order changes time, never results.
LONGEST_FIRST = ('test_speed.py', 'test_faults.py', 'test_sharding.py', 'test_convert_workdir.py',
                 'test_multihost.py', 'test_seq2seq.py', 'test_train.py', 'test_families.py',
                 'test_heads.py', 'test_sft.py', 'test_generate.py', 'test_selection.py')


def pytest_collection_modifyitems(items):
  rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest as found


@pytest.fixture
def tiny_config():
  def make(*overrides):
    return checks.load(SHAKESPEARE, TINY + list(overrides))
  return make


@pytest.fixture(autouse=True, scope='session')
def _isolated_cache(tmp_path_factory):
  """Prepared datasets go to a per-session folder, not the user's ~/.cache; so do compiled
  executables (JAX's persistent cache), which the many tiny runs of a session share, in
  this process and in the CLI subprocesses it starts."""
  os.environ['LLM_JAX_CACHE_DIR'] = str(tmp_path_factory.mktemp('llm_jax_cache'))
  compiled = {'JAX_COMPILATION_CACHE_DIR': str(tmp_path_factory.mktemp('jax_cache')),
              'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS': '0',
              'JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES': '0'}
  os.environ.update(compiled)
  for name, value in compiled.items():
    jax.config.update(name.lower(), float(value) if name.endswith('_SECS') else
                      int(value) if name.endswith('_BYTES') else value)


def write_labelled(root, words: dict, sizes: dict[str, int], picks: int,
                   filler: tuple[str, ...]) -> None:
  """``root/<split>.tsv`` files of a learnable toy task: each row is ``picks`` words of its
  label's list plus the ``filler`` words every label shares, shuffled; a header line."""
  rng = np.random.default_rng(0)
  labels = list(words)
  for split, n in sizes.items():
    rows = ['text\tlabel']
    for _ in range(n):
      label = labels[int(rng.integers(0, len(labels)))]
      chosen = rng.choice(words[label].split(), size=picks).tolist() + list(filler)
      rows.append(f'{" ".join(rng.permutation(chosen))}\t{label}')
    (root / f'{split}.tsv').write_text('\n'.join(rows) + '\n')
