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
