"""Masked-LM corruption (BERT's 15%, 80/10/10) and its task on an encoder."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm_jax import models, objectives, parallel, tasks
from llm_jax.errors import UsageError
from llm_jax.models import TransformerConfig

PAD, CLS, SEP, MASK, VOCAB = 0, 1, 2, 3, 1000
SPECIAL = {'pad': PAD, 'cls': CLS, 'sep': SEP, 'mask': MASK}


def rows(batch=64, length=128, seed=0):
  """[CLS] text [SEP] padding, text lengths varying per row."""
  rng = np.random.default_rng(seed)
  tokens = np.full((batch, length), PAD, np.int32)
  for i, n in enumerate(rng.integers(length // 2, length - 1, batch)):
    tokens[i, 0], tokens[i, 1:n + 1], tokens[i, n + 1] = CLS, rng.integers(4, VOCAB, n), SEP
  return jnp.asarray(tokens)


@jax.jit
def draws(keys, tokens, word_starts=None):
  mask = functools.partial(objectives.mask_tokens, vocab_size=VOCAB, mask_id=MASK,
                           special_ids=(PAD, CLS, SEP, MASK), word_starts=word_starts)
  return jax.vmap(lambda key: mask(key, tokens))(keys)


def test_masking_proportions_hold_over_many_draws():
  tokens = rows()
  inputs, weights = draws(jax.random.split(jax.random.key(0), 20), tokens)
  maskable = np.broadcast_to(np.asarray(tokens) > MASK, inputs.shape)
  selected = np.asarray(weights) == 1
  assert not selected[~maskable].any()  # special tokens and padding: never selected
  np.testing.assert_array_equal(np.asarray(inputs)[~maskable],
                                np.broadcast_to(tokens, inputs.shape)[~maskable])
  assert abs(selected.sum() / maskable.sum() - 0.15) < 0.005
  original = np.broadcast_to(tokens, inputs.shape)[selected]
  chosen = np.asarray(inputs)[selected]
  n = selected.sum()
  assert abs((chosen == MASK).sum() / n - 0.8) < 0.01
  assert abs((chosen == original).sum() / n - 0.1) < 0.01  # kept (or drawn as itself: 0.1%)
  assert abs(((chosen != MASK) & (chosen != original)).sum() / n - 0.1) < 0.01
  assert not np.array_equal(inputs[0], inputs[1])  # each key draws its own masking


def test_whole_word_masking_selects_words_whole():
  tokens = rows(batch=32)
  rng = np.random.default_rng(1)
  word_starts = (rng.random(tokens.shape) < 0.5) | (np.asarray(tokens) <= MASK)
  word_starts[:, 0] = True
  _, weights = draws(jax.random.split(jax.random.key(1), 10), tokens, word_starts)
  word = np.cumsum(word_starts, axis=1)
  maskable = np.asarray(tokens) > MASK
  picked_words = 0
  for w in weights:
    for r in range(tokens.shape[0]):
      for k in np.unique(word[r][maskable[r]]):
        members = np.asarray(w[r])[(word[r] == k) & maskable[r]]
        assert members.min() == members.max()  # a word is selected whole or not at all
        picked_words += members[0]
  words = sum(len(np.unique(word[r][maskable[r]])) for r in range(tokens.shape[0])) * 10
  assert abs(picked_words / words - 0.15) < 0.01


def test_loss_counts_selected_positions_only():
  tokens = rows(batch=4, length=16)
  _inputs, weights = objectives.mask_tokens(jax.random.key(2), tokens, vocab_size=VOCAB,
                                           mask_id=MASK, special_ids=(PAD, CLS, SEP, MASK),
                                           rate=0.5)
  logits = jax.random.normal(jax.random.key(3), tokens.shape + (VOCAB,))
  loss, metrics = objectives.masked_lm(logits, tokens, weights)
  noisy = jnp.where(weights[..., None] == 1, logits, 1e3 * logits)  # unselected: garbage
  np.testing.assert_allclose(objectives.masked_lm(noisy, tokens, weights)[0], loss, rtol=1e-6)
  assert float(metrics['tokens']) == float(weights.sum()) > 0


@pytest.fixture(scope='module')
def bert():
  cfg = TransformerConfig(vocab_size=VOCAB, kind='encoder', d_model=32, num_heads=4,
                          num_layers=1, max_len=16, pre_norm=False, type_vocab_size=2,
                          embed_norm=True)
  model = models.build(cfg)
  return model, parallel.unbox(model.init(jax.random.key(0), *models.sample_inputs(cfg))['params'])


@pytest.mark.slow
def test_masked_lm_task_trains_an_encoder(bert):
  model, params = bert
  task = tasks.bind('masked_lm', VOCAB, SPECIAL)
  tokens = rows(batch=4, length=16)
  batch = {'inputs': tokens, 'segment_ids': (tokens != PAD).astype(jnp.int32)}
  step = jax.jit(jax.value_and_grad(
      lambda p, key: task(model, p, batch, key, train=True), has_aux=True))
  (loss, metrics), grads = step(params, jax.random.key(4))
  assert np.isfinite(loss) and float(metrics['tokens']) > 0
  assert np.abs(grads['mlm_bias']).max() > 0
  (again, _), _ = step(params, jax.random.key(4))
  assert float(again) == float(loss)  # masking is a function of the key


@pytest.mark.slow
def test_the_task_predicts_only_masked_positions_and_loses_nothing(bert):
  """Logits at the (capped) masked positions give the loss of logits at every position."""
  model, params = bert
  tokens = rows(batch=8, length=16, seed=3)
  batch = {'inputs': tokens, 'segment_ids': (tokens != PAD).astype(jnp.int32)}
  rng = jax.random.key(7)
  loss, metrics = tasks.bind('masked_lm', VOCAB, SPECIAL)(model, params, batch, rng, train=False)
  inputs, weights = objectives.mask_tokens(jax.random.split(rng)[0], tokens, vocab_size=VOCAB,
                                           mask_id=MASK, special_ids=(PAD, CLS, SEP, MASK))
  assert int(weights.sum(1).max()) <= objectives.prediction_cap(16)  # the cap did not bind
  logits = model.apply({'params': params}, inputs, None, batch['segment_ids'])
  full_loss, full = objectives.masked_lm(logits, tokens, weights)
  np.testing.assert_allclose(loss, full_loss, rtol=1e-6)
  assert float(metrics['tokens']) == float(full['tokens']) == float(weights.sum())
  np.testing.assert_allclose(metrics['correct_sum'], full['correct_sum'])


def test_selections_past_the_cap_are_undone():
  tokens = jnp.arange(10, 18)[None].repeat(2, 0)
  weights = jnp.array([[0, 1, 1, 0, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0, 1, 0]], jnp.float32)
  inputs = jnp.where(weights > 0, MASK, tokens)
  inputs, positions, kept = objectives.cap_predictions(tokens, inputs, weights, cap=3)
  np.testing.assert_array_equal(positions[0], [1, 2, 4])
  np.testing.assert_array_equal(kept, [[1, 1, 1], [1, 0, 0]])
  assert int(positions[1, 0]) == 6
  np.testing.assert_array_equal(inputs[0], [10, MASK, MASK, 13, MASK, 15, 16, 17])  # 5 restored
  assert [objectives.prediction_cap(n) for n in (16, 64, 128, 512)] == [9, 22, 36, 110]


def test_bind_names_the_missing_special_token():
  with pytest.raises(UsageError, match="needs the tokenizer's cls, sep, mask token"):
    tasks.bind('masked_lm', VOCAB, {'pad': 0})


def test_masking_rates_come_from_the_config_section():
  """mlm.rate and the [MASK]/random shares reach the objective; bad values are refused."""
  from llm_jax import config as config_lib
  from llm_jax.train import checks
  config = config_lib.base()
  ids = tasks.get('masked_lm').token_ids(VOCAB, SPECIAL, config)
  assert ids['rates'] == (0.15, 0.8, 0.1)  # today's defaults, BERT's
  config.mlm.rate, config.mlm.mask_fraction, config.mlm.random_fraction = 0.5, 1.0, 0.0
  rates = tasks.get('masked_lm').token_ids(VOCAB, SPECIAL, config)['rates']
  tokens = rows(batch=8, length=64, seed=5)
  inputs, at, weights = tasks.masked_lm.corrupt(jax.random.key(0), {'inputs': tokens}, VOCAB,
                                                MASK, (PAD, CLS, SEP, MASK), rates)
  maskable = float((~np.isin(tokens, [PAD, CLS, SEP, MASK])).sum())
  assert 0.42 < float(weights.sum()) / maskable < 0.58
  chosen = np.take_along_axis(np.asarray(inputs), np.asarray(at), 1)[np.asarray(weights) > 0]
  assert (chosen == MASK).all()  # mask_fraction 1: every selected token is [MASK]
  config.mlm.mask_fraction, config.mlm.random_fraction = 0.95, 0.1
  with pytest.raises(checks.config_lib.ConfigError, match='add up to at most 1'):
    checks.validate(_with_objective(config, 'masked_lm'))


def _with_objective(config, objective):
  config.objective, config.model.kind, config.data.batching = objective, 'encoder', 'packed'
  return config
