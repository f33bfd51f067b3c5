import os

import jax
import pytest

from llm_jax import config as config_lib
from llm_jax import models, parallel
from llm_jax.perf import plan
from llm_jax.train import checks
from tests.conftest import REPO


def load(spec, *overrides):
  return checks.load(os.path.join(REPO, 'configs', spec), list(overrides))


@pytest.mark.slow
@pytest.mark.parametrize('spec', ['gpt.py:tiny', 'llama.py:tiny', 't5.py:tiny', 'bert.py:tiny'])
def test_parameter_count_is_the_models_own(spec, capsys):
  config = load(spec, 'model.vocab_size=1000')
  cfg = config_lib.model_config(config, 1000)
  params = models.build(cfg).init(jax.random.key(0), *models.sample_inputs(cfg))['params']
  expected = sum(x.size for x in jax.tree_util.tree_leaves(parallel.unbox(params)))
  assert plan.run(config, 8, 'h100')['params'] == expected


def test_sharding_divides_state_and_a_layout_that_cannot_fit_is_flagged(capsys):
  fsdp = plan.run(load('llama.py:7b'), 256, 'tpu-v5p')
  assert fsdp['params'] == 6_738_415_616 and fsdp['fits']
  per_device = fsdp['memory_per_device']
  assert per_device['params'] == pytest.approx(4 * 6_738_415_616 / 256, rel=0.01)
  assert per_device['optimizer'] == 2 * per_device['params']
  replicated = plan.run(load('llama.py:7b', 'parallel.fsdp=1', 'parallel.data=-1',
                             'train.batch_size=8'), 8, 'h100')
  assert replicated['memory_per_device']['params'] == 4 * 6_738_415_616
  assert not replicated['fits']
  assert 'WARNING: needs' in capsys.readouterr().out
  assert fsdp['flops_per_token'] == 6 * 6_738_415_616 + 12 * 32 * 32 * 128 * 4096


def test_remat_trades_activation_memory(capsys):
  sizes = {remat: plan.run(load('gpt.py:gpt2', f'model.remat={remat}', 'train.batch_size=64',
                                'train.seq_len=1024'), 8, 'h100')['memory_per_device']
           ['activations'] for remat in ('none', 'save_dots', 'full')}
  assert sizes['none'] > sizes['save_dots'] > sizes['full']
