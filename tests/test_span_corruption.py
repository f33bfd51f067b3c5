"""T5 span corruption as t5x builds it, and its task on an encoder-decoder."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm_jax import models, objectives, parallel, tasks
from llm_jax.models import TransformerConfig

PAD, EOS, VOCAB = 0, 1, 100


def test_hand_worked_example():
  # text "a b c d e f" = 10..15, noise "c d" and "f"; sentinels 99, 98 (vocab_size - 1, - 2)
  tokens = jnp.array([[10, 11, 12, 13, 14, 15, 0, 0]])
  noise = jnp.array([[False, False, True, True, False, True, False, False]])
  lengths = jnp.array([6])
  ids = dict(vocab_size=VOCAB, eos_id=EOS, pad_id=PAD)
  inputs = objectives.spans_to_sentinels(tokens, noise, lengths, out_length=8, **ids)
  targets = objectives.spans_to_sentinels(tokens, ~noise, lengths, out_length=8, **ids)
  np.testing.assert_array_equal(inputs, [[10, 11, 99, 14, 98, 1, 0, 0]])
  np.testing.assert_array_equal(targets, [[99, 12, 13, 98, 15, 1, 0, 0]])


def test_static_lengths_are_t5x_numbers():
  assert objectives.span_corruption_lengths(568) == (512, 114)
  assert objectives.span_corruption_tokens_length(512) == 568
  assert objectives.span_corruption_lengths(6) == (7, 3)  # 1 noise token in 1 span


def test_noise_masks_have_t5x_counts_and_shape():
  lengths = jnp.array([568, 100, 37, 8, 0])
  masks = jax.jit(functools.partial(objectives.random_spans_noise_mask, size=568))(
      jax.random.key(0), lengths)
  for mask, n in zip(np.asarray(masks), [568, 100, 37, 8, 0]):
    assert not mask[n:].any()
    if n == 0:
      continue
    noise = max(min(round(n * 0.15), n - 1), 1)
    spans = max(round(noise / 3), 1)
    starts = mask[:n] & ~np.concatenate([[False], mask[:n - 1]])
    assert (mask.sum(), starts.sum()) == (noise, spans)
    assert not mask[0] and mask[n - 1]  # non-noise first, noise last (t5x, no random roll)


def test_inputs_and_targets_rebuild_the_text():
  rng = np.random.default_rng(0)
  tokens = np.zeros((6, 64), np.int32)
  lengths = [64, 64, 50, 20, 3, 0]
  for row, n in zip(tokens, lengths):
    row[:n] = rng.integers(2, VOCAB - 20, n)
  corrupt = jax.jit(functools.partial(objectives.span_corruption, vocab_size=VOCAB,
                                      eos_id=EOS))
  inputs, targets = corrupt(jax.random.key(1), jnp.asarray(tokens))
  assert (inputs.shape[1], targets.shape[1]) == objectives.span_corruption_lengths(64)
  for row, n, x, y in zip(tokens, lengths, np.asarray(inputs), np.asarray(targets)):
    if n == 0:
      assert not x.any() and not y.any()
      continue
    x, y = list(x[:list(x).index(EOS)]), list(y[:list(y).index(EOS)])
    pieces, current = {}, None  # sentinel -> the span it stands for
    for token in y:
      if token >= VOCAB - 20:
        current = pieces.setdefault(token, [])
      else:
        current.append(token)
    rebuilt = [t for token in x for t in (pieces.get(token, [token]))]
    assert rebuilt == list(row[:n])
    assert sorted(pieces, reverse=True) == list(range(VOCAB - 1, VOCAB - 1 - len(pieces), -1))
  again, _ = corrupt(jax.random.key(1), jnp.asarray(tokens))
  np.testing.assert_array_equal(again, inputs)


@pytest.mark.slow
def test_span_corruption_task_trains_an_encoder_decoder():
  cfg = TransformerConfig(vocab_size=VOCAB, kind='encoder_decoder', d_model=32, num_heads=4,
                          num_layers=1, norm='rmsnorm', positions='relative', mlp='geglu',
                          use_bias=False, scaled_attention=False, tie_embeddings=False)
  model = models.build(cfg)
  params = parallel.unbox(model.init(jax.random.key(0), *models.sample_inputs(cfg))['params'])
  task = tasks.bind('span_corruption', VOCAB, {'pad': PAD, 'eos': EOS})
  tokens = jax.random.randint(jax.random.key(2), (2, 40), 2, VOCAB - 20)
  batch = {'inputs': tokens.at[1, 30:].set(PAD)}
  step = jax.jit(jax.value_and_grad(
      lambda p: task(model, p, batch, jax.random.key(3), train=True), has_aux=True))
  (loss, metrics), grads = step(params)
  # targets: noise tokens, one sentinel per span and EOS; round(40 * .15) = 6 in 2 spans
  assert np.isfinite(loss) and float(metrics['tokens']) == (6 + 2 + 1) + (4 + 1 + 1)
  assert np.abs(grads['lm_head']['kernel']).max() > 0


def test_noise_density_and_span_length_come_from_the_config_section():
  from llm_jax import config as config_lib
  config = config_lib.base()
  task = tasks.get('span_corruption')
  special = {'pad': PAD, 'eos': EOS}
  assert task.token_ids(VOCAB, special, config)['noise'] == (0.15, 3.0)  # T5's defaults
  config.span_corruption.noise_density, config.span_corruption.mean_span_length = 0.3, 2.0
  config.train.seq_len = 32
  assert task.token_ids(VOCAB, special, config)['noise'] == (0.3, 2.0)
  raw = task.packing(special, config).lengths['inputs']
  assert raw == objectives.span_corruption_tokens_length(32, 0.3, 2.0) > 32
  tokens = jax.random.randint(jax.random.key(1), (1, raw), 2, VOCAB - 20)
  inputs, targets = objectives.span_corruption(jax.random.key(2), tokens, vocab_size=VOCAB,
                                               eos_id=EOS, pad_id=PAD, noise_density=0.3,
                                               mean_noise_span_length=2.0)
  noise = round(raw * 0.3)
  spans = round(noise / 2.0)
  assert int((targets != PAD).sum()) == noise + spans + 1
  assert inputs.shape[1] <= 32
