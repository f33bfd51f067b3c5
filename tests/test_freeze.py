import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import traverse_util

from llm_jax import config as config_lib
from llm_jax import models, parallel
from llm_jax.errors import UsageError
from llm_jax.models import paths
from llm_jax.train import freeze, optim
from llm_jax.train import state as state_lib
from tests.test_heads import BERT

MODEL = models.build_classifier(BERT, 2, lora=models.LoraConfig(rank=2))
SAMPLE = models.sample_inputs(BERT, 1, 8)

# spec -> the parameters it trains, written out by hand (BERT is post-norm: no final norm)
EXPECTED = {
    'all': lambda p: True,
    'head': lambda p: p.startswith('classifier/'),
    'top_k_layers:1': lambda p: p.startswith(('classifier/', 'pooler/', 'encoder/block_1/')),
    'bitfit': lambda p: p.startswith('classifier/') or p.endswith('/bias'),
    'embeddings_frozen': lambda p: not p.startswith(
        ('embed/', 'encoder/pos_embedding', 'encoder/type_embedding', 'encoder/embed_norm/')),
    'lora': lambda p: p.startswith('classifier/') or '/lora/' in p,
    'regex:attention/(query|key)/kernel$': lambda p: p.endswith(
        ('attention/query/kernel', 'attention/key/kernel')),
}


@pytest.fixture(scope='module')
def params():
  return parallel.unbox(MODEL.init(jax.random.key(0), *SAMPLE)['params'])


def adamw(**changes) -> ml_collections.ConfigDict:
  o = config_lib.base().optim
  o.update(dict(lr=1e-2, min_lr=0.0, schedule='constant', warmup_steps=0, **changes))
  return o


def flat(tree):
  return traverse_util.flatten_dict(tree, sep='/')


def state_size(opt_state) -> int:
  """Elements of the optimizer state's arrays (step counters, scalars, excepted)."""
  return sum(x.size for x in jax.tree_util.tree_leaves(opt_state) if x.ndim)


@pytest.mark.parametrize('spec', list(EXPECTED))
def test_frozen_parameters_stay_bit_identical_and_hold_no_state(params, spec):
  tx = freeze.wrap(optim.make(adamw(), 100), spec)
  opt_state = tx.init(params)
  trains = {p: EXPECTED[spec](p) for p in flat(params)}
  trainable = sum(v.size for p, v in flat(params).items() if trains[p])
  total = sum(x.size for x in jax.tree_util.tree_leaves(params))
  assert freeze.count(params, spec) == (trainable, total)
  assert state_size(opt_state) == 2 * trainable  # AdamW's two moments, trainable leaves only

  rng = np.random.default_rng(0)
  after = params
  for _ in range(3):
    grads = jax.tree_util.tree_map(lambda x: rng.standard_normal(x.shape, np.float32), params)
    updates, opt_state = tx.update(grads, opt_state, after)
    after = optax.apply_updates(after, updates)
  for path, before in flat(params).items():
    changed = not np.array_equal(flat(after)[path], before)
    assert changed == trains[path], path


def test_sharded_train_state_allocates_moments_for_trainable_leaves_only():
  """The loop's path: ``tx.init`` sees the boxed parameters of a fresh init, and every
  leaf of the state gets a sharding."""
  tx = freeze.wrap(optim.make(adamw(), 100), 'head')
  mesh = parallel.make_mesh(ml_collections.ConfigDict({'data': -1, 'fsdp': 1, 'tensor': 1}))
  state, shardings = state_lib.abstract(MODEL, tx, SAMPLE, mesh)
  assert state_size(state.opt_state) == 2 * (16 * 2 + 2)
  assert len(jax.tree_util.tree_leaves(shardings)) == len(jax.tree_util.tree_leaves(state))


def test_trainable_only_leaves_out_frozen_leaves(params):
  kept = freeze.trainable_only(params, 'head')
  assert sorted(p for p, v in flat(kept).items() if v is not None) == [
      'classifier/bias', 'classifier/kernel']
  np.testing.assert_allclose(optax.tree.norm(kept), optax.tree.norm(params['classifier']),
                             rtol=1e-6)


def test_adamw_decays_trainable_matrices_only(params):
  o = adamw(weight_decay=0.5, clip_norm=0.0)
  tx = freeze.wrap(optim.make(o, 100), 'top_k_layers:1')
  zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
  updates, _ = tx.update(zeros, tx.init(params), params)
  after = flat(optax.apply_updates(params, updates))
  for path, before in flat(params).items():
    decays = EXPECTED['top_k_layers:1'](path) and before.ndim >= 2
    expected = before * (1 - o.lr * o.weight_decay) if decays else before
    np.testing.assert_allclose(after[path], expected, rtol=1e-6, err_msg=path)


def test_layer_decay_scales_updates_by_depth(params):
  tx = freeze.wrap(optax.sgd(1.0), 'all', layer_decay=0.5)
  ones = jax.tree_util.tree_map(jnp.ones_like, params)
  updates = flat(tx.update(ones, tx.init(params), params)[0])
  # two blocks: embeddings 0.5**3, block_0 0.5**2, block_1 0.5, head and pooler 1
  for path, scale in [('embed/embedding', 0.125), ('encoder/embed_norm/scale', 0.125),
                      ('encoder/block_0/attention/query/kernel', 0.25),
                      ('encoder/block_1/attention/value/lora/b', 0.5), ('pooler/kernel', 1.0),
                      ('classifier/bias', 1.0)]:
    np.testing.assert_array_equal(updates[path], -scale, err_msg=path)
  frozen = freeze.wrap(optax.sgd(1.0), 'head', layer_decay=0.5)
  np.testing.assert_array_equal(
      flat(frozen.update(ones, frozen.init(params), params)[0])['embed/embedding'], 0.0)


@pytest.mark.parametrize('spec, decay, words', [
    ('heads', 1.0, 'is not one of'), ('top_k_layers:two', 1.0, 'layer count'),
    ('regex:(', 1.0, 'not a regex'), ('all', 0.0, 'layer decay'),
])
def test_malformed_specs_are_named(spec, decay, words):
  assert words in freeze.errors(spec, decay)[0]
  with pytest.raises(UsageError, match=words):
    freeze.wrap(optax.sgd(1.0), spec, decay)


@pytest.mark.parametrize('spec, words', [
    ('top_k_layers:3', 'has 2 layers'), ('regex:^nothing$', 'no parameter to train'),
    ('lora', 'enable LoRA'),
])
def test_specs_that_cannot_apply_to_the_model_are_refused(spec, words):
  plain = parallel.unbox(models.build_classifier(BERT, 2).init(jax.random.key(0), *SAMPLE)
                         ['params'])
  with pytest.raises(UsageError, match=words):
    freeze.labels(plain, spec)


@pytest.mark.parametrize('spec, decay', [('top_k_layers:1', 0.5), ('embeddings_frozen', 1.0)])
def test_scanned_layers_freeze_and_decay_as_separate_blocks_do(spec, decay):
  """The same classifier with ``scan_layers=True`` (blocks stacked in one leaf) trains
  exactly as the per-block one: the same layers move, by the same updates."""
  scanned_cfg = dataclasses.replace(BERT, scan_layers=True)
  per_block = models.build_classifier(BERT, 2)
  scanned = models.build_classifier(scanned_cfg, 2)
  params = parallel.unbox(per_block.init(jax.random.key(0), *SAMPLE)['params'])
  stacked = paths.scan(params)
  assert sorted(flat(stacked)) == sorted(flat(parallel.unbox(
      scanned.init(jax.random.key(0), *SAMPLE)['params'])))
  assert freeze.count(stacked, spec) == freeze.count(params, spec)
  rng = np.random.default_rng(0)
  grads = jax.tree_util.tree_map(lambda x: rng.standard_normal(x.shape, np.float32), params)
  results = []
  for tree, g, is_scanned in ((params, grads, False), (stacked, paths.scan(grads), True)):
    tx = freeze.wrap(optim.make(adamw(weight_decay=0.1), 100), spec, decay, scanned=is_scanned)
    opt_state, after = tx.init(tree), tree
    for _ in range(2):
      updates, opt_state = tx.update(g, opt_state, after)
      after = optax.apply_updates(after, updates)
    results.append(flat(paths.unscan(after) if is_scanned else after))
  for path, before in flat(params).items():
    np.testing.assert_allclose(results[1][path], results[0][path], rtol=1e-6, atol=1e-7,
                               err_msg=path)
    assert np.array_equal(results[1][path], before) == np.array_equal(results[0][path], before)
  assert np.array_equal(results[1]['encoder/block_0/attention/query/kernel'],
                        flat(params)['encoder/block_0/attention/query/kernel']) == (
                            spec == 'top_k_layers:1')


def test_unscan_and_scan_are_inverse(params):
  stacked = paths.scan(params)
  assert 'blocks' in stacked['encoder'] and 'block_0' not in stacked['encoder']
  for path, x in flat(paths.unscan(stacked)).items():
    np.testing.assert_array_equal(x, flat(params)[path])
