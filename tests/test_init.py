"""model.init: each named initializer gives weight matrices the variance its definition says."""

import jax
import numpy as np
import pytest
from flax import traverse_util

from llm_jax import models
from llm_jax.models import layers

# (init, kernel shape, contracted axes) -> the variance by definition
CASES = [
    ('normal', (64, 256), 1, 0.02 ** 2),
    # cut at two standard deviations: the variance of N(0, 1) on [-2, 2] is 0.7737
    ('truncated_normal', (64, 256), 1, 0.7737 * 0.02 ** 2),
    ('xavier_uniform', (64, 256), 1, 2 / (64 + 256)),
    ('xavier_uniform', (64, 4, 16), 1, 2 / (64 + 64)),  # a query kernel: out = heads x kv
    ('xavier_normal', (4, 16, 96), 2, 2 / (64 + 96)),  # an attention output kernel
    ('he_normal', (256, 64), 1, 2 / 256),
    ('he_normal', (4, 16, 96), 2, 2 / 64),
    ('he_uniform', (64, 4, 16), 1, 2 / 64),
]


@pytest.mark.parametrize('init,shape,n_in,variance', CASES)
def test_initializer_variance(init, shape, n_in, variance):
  values = np.asarray(layers.KernelInit(init, 0.02)(n_in, len(shape))(jax.random.key(0), shape))
  assert values.shape == shape
  assert abs(values.mean()) < 4 * np.sqrt(variance / values.size)
  np.testing.assert_allclose(values.var(), variance, rtol=0.06)
  if init.endswith('uniform'):  # bounded by sqrt(3 var): a uniform, not a normal
    bound = np.sqrt(3 * variance)
    assert bound >= np.abs(values).max() > 0.98 * bound
  if 'normal' in init and init != 'normal':  # truncated at two of its standard deviations
    assert np.abs(values).max() <= 2 * np.sqrt(variance / 0.7737) + 1e-6


def test_model_init_reaches_every_matrix_and_leaves_tables_normal():
  d, ff = 64, 256
  cfg = models.TransformerConfig(vocab_size=50, d_model=d, num_heads=4, num_layers=2, d_ff=ff,
                                 init='he_normal', tie_embeddings=False)
  model = models.build(cfg)
  params = jax.jit(model.init)(jax.random.key(0), *models.sample_inputs(cfg))['params']
  flat = {k: np.asarray(getattr(v, 'value', v))
          for k, v in traverse_util.flatten_dict(jax.device_get(params), sep='/').items()}

  def var(suffix):
    (key,) = [k for k in flat if k.endswith(suffix)]
    return flat[key].var()
  for suffix, fan_in in (('block_0/mlp/wi/kernel', d), ('block_1/mlp/wo/kernel', ff),
                         ('block_0/attention/query/kernel', d),
                         ('block_1/attention/out/kernel', d), ('lm_head/kernel', d)):
    np.testing.assert_allclose(var(suffix), 2 / fan_in, rtol=0.1, err_msg=suffix)
  np.testing.assert_allclose(np.sqrt(var('embed/embedding')), 0.02, rtol=0.06)


def test_unknown_initializer_is_refused():
  cfg = models.TransformerConfig(vocab_size=50, init='glorot')
  assert any("model.init='glorot' is not one of" in e for e in cfg.errors())
