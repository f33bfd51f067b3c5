import flax.linen as nn
import jax
import numpy as np
import optax
import pytest
from flax import traverse_util

from llm_jax import models, parallel
from llm_jax.models import lora
from llm_jax.tasks import classification
from llm_jax.train import freeze
from tests.test_heads import BERT, LLAMA, batch

LORA = models.LoraConfig(rank=2, alpha=4.0, dropout=0.1,
                         targets=('attention/(query|value|out)$', 'mlp/wo$'))
BODIES = pytest.mark.parametrize('cfg, pooling', [(BERT, 'cls'), (LLAMA, 'last')],
                                 ids=['encoder', 'decoder'])


def flat(tree):
  return traverse_util.flatten_dict(tree, sep='/')


def without_adapters(params):
  return traverse_util.unflatten_dict(
      {p: v for p, v in flat(params).items() if not lora.is_adapter(p)}, sep='/')


def logits(model, params, data):
  return classification.logits(model, params, data)


@BODIES
def test_zero_initialised_b_reproduces_the_base_model_exactly(cfg, pooling):
  data = batch([0, 1, 1, 0])
  adapted = models.build_classifier(cfg, 2, pooling=pooling, lora=LORA)
  base = models.build_classifier(cfg, 2, pooling=pooling)
  boxed = adapted.init(jax.random.key(0), data['inputs'])['params']
  params = parallel.unbox(boxed)
  adapters = sorted({p.rsplit('/lora/', 1)[0] for p in flat(params) if lora.is_adapter(p)})
  assert adapters == sorted(f'{cfg.kind}/block_{i}/{name}' for i in range(2)
                            for name in ('attention/query', 'attention/value', 'attention/out',
                                         'mlp/wo'))
  for leaf in jax.tree_util.tree_leaves(boxed, is_leaf=lambda x: isinstance(x, nn.Partitioned)):
    assert isinstance(leaf, nn.Partitioned) and len(leaf.names) == leaf.value.ndim
  # without LoRA the tree is the base model's: no parameter is added
  base_shapes = jax.eval_shape(base.init, jax.random.key(0), data['inputs'])['params']
  assert flat(parallel.unbox(base_shapes)).keys() == flat(without_adapters(params)).keys()
  np.testing.assert_array_equal(logits(adapted, params, data),
                                logits(base, without_adapters(params), data))


@BODIES
def test_merged_adapters_equal_the_unmerged_model(cfg, pooling):
  data = batch([0, 1, 1, 0])
  adapted = models.build_classifier(cfg, 2, pooling=pooling, lora=LORA)
  params = parallel.unbox(adapted.init(jax.random.key(0), data['inputs'])['params'])
  rng = np.random.default_rng(0)
  params = traverse_util.unflatten_dict(
      {p: rng.standard_normal(v.shape, np.float32) * 0.5 if p.endswith('/lora/b') else v
       for p, v in flat(params).items()}, sep='/')
  merged = lora.merge(params, LORA)
  assert flat(merged).keys() == flat(without_adapters(params)).keys()
  base = models.build_classifier(cfg, 2, pooling=pooling)
  unmerged = logits(adapted, params, data)
  assert np.abs(unmerged - logits(base, without_adapters(params), data)).max() > 1e-3
  np.testing.assert_allclose(logits(base, merged, data), unmerged, atol=1e-5)


@pytest.mark.slow
def test_lora_training_changes_only_adapters_and_head_then_merges():
  data = batch([0, 1, 1, 0, 1, 0])
  adapted = models.build_classifier(BERT, 2, lora=LORA)
  params = parallel.unbox(adapted.init(jax.random.key(0), data['inputs'])['params'])
  tx = freeze.wrap(optax.adamw(1e-2), 'lora')

  @jax.jit
  def step(params, opt_state, rng):
    grads, _ = jax.grad(lambda p: classification.TASK.loss(adapted, p, data, rng, True),
                        has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  trained, opt_state = params, tx.init(params)
  for i in range(4):  # LoRA dropout and head dropout on: the rng matters
    trained, opt_state = step(trained, opt_state, jax.random.key(i))
  for path, before in flat(params).items():
    trains = lora.is_adapter(path) or path.startswith('classifier/')
    assert (not np.array_equal(flat(trained)[path], before)) == trains, path
  base = models.build_classifier(BERT, 2)
  np.testing.assert_allclose(logits(base, lora.merge(trained, LORA), data),
                             logits(adapted, trained, data), atol=1e-5)
