"""The Keras-style LSTM classifier: padding never reaches its state, one sigmoid unit, it learns."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm_jax import config as config_lib
from llm_jax import models, parallel, train
from llm_jax.train import checks
from tests.conftest import REPO, SHAKESPEARE, write_labelled

CONFIG = os.path.join(REPO, 'configs', 'sst2_lstm.py')
WORDS = {1: 'good great fine nice lovely', 0: 'bad awful poor ugly dull'}


def lstm_config(**fields):
  return models.TransformerConfig(**{'vocab_size': 40, 'kind': 'lstm', 'd_model': 8,
                                     'num_layers': 2, 'lstm_hidden': (12, 6), **fields})


def init(model, cfg):
  return parallel.unbox(model.init(jax.random.key(0), *models.sample_inputs(cfg, 1, 8))['params'])


@pytest.mark.slow
def test_appended_padding_never_changes_a_row():
  cfg = lstm_config()
  model = models.build_classifier(cfg, 2, pooling='last')
  params = init(model, cfg)
  rng = np.random.default_rng(0)
  lengths = np.array([5, 1, 7, 0])
  tokens = rng.integers(1, 40, (4, 7))
  mask = (np.arange(7) < lengths[:, None]).astype(np.int32)
  apply = jax.jit(model.apply)  # a scan dispatched op by op takes half a minute
  short = apply({'params': params}, jnp.asarray(tokens * mask), None, jnp.asarray(mask))
  # longer rows whose padding holds arbitrary ids: only the attention mask says it is padding
  long_tokens = np.concatenate([tokens, rng.integers(1, 40, (4, 9))], axis=1)
  long_mask = np.pad(mask, ((0, 0), (0, 9)))
  long = apply({'params': params}, jnp.asarray(long_tokens), None, jnp.asarray(long_mask))
  np.testing.assert_allclose(long, short, atol=1e-6)
  # and the rows differ from one another: the test would see padding leak into the state
  assert np.ptp(np.asarray(short[:, 1])) > 1e-4


def test_binary_probability_is_the_sigmoid_of_one_dense_unit():
  cfg = lstm_config()
  model = models.build_classifier(cfg, 2, pooling='last')
  params = init(model, cfg)
  kernel, bias = params['classifier']['kernel'], params['classifier']['bias']
  assert kernel.shape == (6, 1) and bias.shape == (1,)  # one unit on the last layer's state
  tokens = jnp.asarray(np.random.default_rng(1).integers(1, 40, (5, 9)))
  logits, found = model.apply({'params': params}, tokens, capture_intermediates=(
      lambda module, method: module.name == 'block_1'))
  (_, state), _ = found['intermediates']['block_1']['__call__'][0]
  unit = (state @ kernel + bias)[:, 0]
  np.testing.assert_array_equal(logits[:, 0], 0.0)
  np.testing.assert_allclose(jax.nn.softmax(logits)[:, 1], jax.nn.sigmoid(unit), atol=1e-7)
  for labels in (3, 1):  # several classes: a logit each; regression: the value
    other = models.build_classifier(cfg, labels, pooling='last')
    out, _ = jax.eval_shape(other.init_with_output, jax.random.key(0), tokens)
    assert out.shape == (5, labels)


@pytest.fixture(scope='module')
def labelled(tmp_path_factory):
  root = tmp_path_factory.mktemp('labelled')
  write_labelled(root, WORDS, {'train': 256, 'dev': 64}, 2, ('the', 'film', 'was'))
  return root


@pytest.mark.slow
def test_a_tiny_lstm_learns_through_the_training_loop(labelled, tmp_path):
  config = checks.load(CONFIG, [
      'data.corpus=files', 'data.format=tsv', 'data.header=true', "data.labels=('0', '1')",
      f'data.files.train={labelled}/train.tsv',
      f'data.files.validation={labelled}/dev.tsv', 'data.vocab_size=0', 'model.d_model=8',
      'model.lstm_hidden=(16, 8)', 'train.batch_size=16', 'train.seq_len=16', 'train.steps=40',
      'train.log_every=10', 'train.eval_every=0', 'train.checkpoint_every=0', 'optim.lr=3e-2'])
  final = train.run(config, str(tmp_path / 'run'), progress=False)
  lines = [json.loads(line) for line in (tmp_path / 'run' / 'metrics.jsonl').read_text().split('\n')
           if line]
  losses = [line['loss'] for line in lines if line['split'] == 'train']
  assert losses[0] > 0.5 and losses[-1] < 0.05
  assert final['val_full_accuracy'] > 0.95 and final['val_full_roc_auc'] > 0.95


@pytest.mark.parametrize('override, words', [
    ('finetune.lora_rank=8', 'LoRA'), ('finetune.pooling=cls', 'pooling'),
    ('model.num_heads=8', 'model.num_heads'),
    ('objective=masked_lm', r"trains with objective in \('causal_lm', 'classification'\)"),
    ('model.num_layers=3', 'lstm_hidden')])
def test_an_option_that_means_nothing_for_an_lstm_fails_in_one_line(override, words):
  with pytest.raises(config_lib.ConfigError, match=words) as e:
    checks.load(CONFIG, [override])
  assert '\n' not in str(e.value)


def test_an_lstm_language_model_trains_on_streams_only():
  with pytest.raises(config_lib.ConfigError, match=r'set data\.batching="streams"') as e:
    checks.load(SHAKESPEARE, ['model.kind=lstm'])
  assert '\n' not in str(e.value)
