import jax
import numpy as np
import pytest

from llm_jax import config as config_lib
from llm_jax import parallel
from llm_jax.data import pipeline
from llm_jax.train import setup as setup_lib


def one_step(config, batch):
  data = pipeline.load(config)
  setup = setup_lib.build(config, config_lib.model_config(config, data.tokenizer.vocab_size))
  with parallel.activate(setup.mesh):
    state = setup.init()
    state, metrics = setup.train_step(state, parallel.global_batch(batch, setup.data_sharding))
  return jax.device_get(state.params), jax.device_get(metrics)


@pytest.mark.slow
def test_accumulating_microbatches_equals_one_step_on_the_whole_batch(tiny_config):
  config = tiny_config('train.batch_size=8', 'optim.warmup_steps=0')  # step 0 moves params
  batch = next(pipeline.load(config).train(None))
  batch['loss_mask'] = (np.arange(16) < np.arange(3, 11)[:, None]).astype(np.float32)  # uneven
  whole_params, whole = one_step(config, batch)
  for k in (2, 4):
    params, metrics = one_step(tiny_config('train.batch_size=8', 'optim.warmup_steps=0',
                                           f'train.microbatches={k}'), batch)
    np.testing.assert_allclose(metrics['nll_sum'], whole['nll_sum'], rtol=1e-6)
    np.testing.assert_allclose(metrics['grad_norm_sum'], whole['grad_norm_sum'], rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(whole_params)):
      np.testing.assert_allclose(a, b, atol=1e-6)
