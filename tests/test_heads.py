import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from llm_jax import models, objectives, parallel
from llm_jax.errors import UsageError
from llm_jax.evaluation import metrics as metrics_lib
from llm_jax.models import TransformerConfig, heads
from llm_jax.tasks import classification

BERT = TransformerConfig(vocab_size=30, kind='encoder', d_model=16, num_heads=2, num_layers=2,
                         max_len=16, pre_norm=False, embed_norm=True, type_vocab_size=2,
                         pooler=True, norm_eps=1e-12)
LLAMA = TransformerConfig(vocab_size=30, d_model=16, num_heads=2, num_kv_heads=1, num_layers=2,
                          max_len=16, norm='rmsnorm', positions='rope', mlp='swiglu',
                          use_bias=False, tie_embeddings=False)


def batch(labels, length=8, seed=0):
  """Right-padded random rows (lengths 3..length), the last row a padding row."""
  n = len(labels)
  tokens = np.asarray(jax.random.randint(jax.random.key(seed), (n, length), 3, 30))
  lengths = np.arange(n) % (length - 2) + 3
  mask = (np.arange(length) < lengths[:, None]).astype(np.int32)
  example_mask = np.ones(n, np.float32)
  example_mask[-1] = 0
  mask[-1] = 0
  return {'inputs': jnp.asarray(tokens * mask), 'attention_mask': jnp.asarray(mask),
          'labels': jnp.asarray(labels), 'example_mask': jnp.asarray(example_mask)}


def fit(model, data, steps=25, lr=1e-2):
  """(first, last) training loss of AdamW steps on one batch."""
  params = parallel.unbox(model.init(jax.random.key(1), data['inputs'])['params'])
  tx = optax.adamw(lr)

  @jax.jit
  def step(params, opt_state, rng):
    (loss, _), grads = jax.value_and_grad(
        functools.partial(classification.TASK.loss, model, batch=data, rng=rng, train=True),
        has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  opt_state, losses = tx.init(params), []
  for i in range(steps):
    params, opt_state, loss = step(params, opt_state, jax.random.key(i))
    losses.append(float(loss))
  assert np.isfinite(losses).all()
  return losses[0], losses[-1]


@pytest.mark.slow
@pytest.mark.parametrize('cfg, pooling', [(BERT, 'cls'), (LLAMA, 'last')],
                         ids=['encoder-cls-pooler', 'decoder-last'])
def test_classifier_loss_falls_on_a_tiny_task(cfg, pooling):
  model = models.build_classifier(cfg, 3, pooling=pooling)
  assert model.use_pooler == (pooling == 'cls')  # the body has a pooler: [CLS] goes through it
  first, last = fit(model, batch([0, 1, 2, 1, 0, 2, 1, -1]))
  assert last < 0.2 * first


@pytest.mark.slow
def test_regression_head_fits_with_mse():  # and mean pooling
  labels = jnp.array([0.5, -1.0, 2.0, 0.0, 1.5, np.nan])  # NaN: the padding row's
  data = batch(labels)
  model = models.build_classifier(BERT, 1, pooling='mean', head_dropout=0.0)
  params = model.init(jax.random.key(1), data['inputs'])['params']
  logits = classification.logits(model, parallel.unbox(params), data)
  loss, sums = objectives.classification(logits, labels, data['example_mask'])
  np.testing.assert_allclose(loss, np.mean((np.asarray(logits[:5, 0]) - labels[:5]) ** 2),
                             rtol=1e-6)
  assert sums['tokens'] == 5 and metrics_lib.summarize(sums)['loss'] == pytest.approx(loss)
  np.testing.assert_array_equal(objectives.predictions(logits), logits[:, 0])
  first, last = fit(model, data)
  assert last < 0.05 * first


def test_classification_objective_counts_only_real_examples():
  logits = jnp.array([[2.0, 0.0], [0.0, 1.0], [1.0, 3.0], [5.0, -5.0]])
  labels = jnp.array([0, 0, 1, -1])  # the last row is padding
  weights = jnp.array([1.0, 1.0, 1.0, 0.0])
  loss, sums = objectives.classification(logits, labels, weights)
  log_probs = jax.nn.log_softmax(logits[:3])
  expected = -np.mean([log_probs[0, 0], log_probs[1, 0], log_probs[2, 1]])
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  assert (float(sums['correct_sum']), float(sums['tokens'])) == (2.0, 3.0)
  assert metrics_lib.summarize(sums)['accuracy'] == pytest.approx(2 / 3)
  np.testing.assert_allclose(objectives.predictions(logits).sum(-1), 1.0, rtol=1e-6)
  grads = jax.grad(lambda x: objectives.classification(x, labels, weights)[0])(logits)
  np.testing.assert_array_equal(grads[3], 0.0)


def test_encoder_body_loads_by_name_and_matches_encoder_lm():
  data = batch([0, 1, 1, 0])
  lm = models.build(BERT)
  pretrained = parallel.unbox(lm.init(jax.random.key(2), data['inputs'])['params'])
  model = models.build_classifier(BERT, 2)
  init = parallel.unbox(model.init(jax.random.key(1), data['inputs'])['params'])
  params, report = models.load_pretrained(init, pretrained)
  assert report.new == ['classifier/bias', 'classifier/kernel']
  assert sorted(report.dropped) == ['mlm_bias', 'mlm_norm/bias', 'mlm_norm/scale',
                                    'mlm_transform/bias', 'mlm_transform/kernel']
  hidden = lm.apply({'params': pretrained}, data['inputs'], None, data['attention_mask'],
                    method='encode')
  pooled = lm.apply({'params': pretrained}, hidden, method='pool')
  head = params['classifier']
  np.testing.assert_allclose(classification.logits(model, params, data),
                             pooled @ head['kernel'] + head['bias'], atol=1e-6)


def test_t5_encoder_body_loads_by_name_and_is_mean_pooled():
  """A classifier on an encoder-decoder reads its encoder alone (the decoder is dropped);
  Hugging Face has no such model, so export refuses it by name."""
  from llm_jax.convert import hf
  from llm_jax.convert.family import ConversionError
  t5 = TransformerConfig(vocab_size=30, kind='encoder_decoder', d_model=16, num_heads=2,
                         num_layers=1, norm='rmsnorm', positions='relative', mlp='geglu',
                         use_bias=False, scaled_attention=False, tie_embeddings=False)
  data = batch([0, 1, 1, 0])
  lm = models.build(t5)
  pretrained = parallel.unbox(jax.jit(lm.init)(jax.random.key(2), data['inputs'],
                                               data['inputs'])['params'])
  model = models.build_classifier(t5, 2, pooling='mean')
  init = parallel.unbox(jax.jit(model.init)(jax.random.key(1), data['inputs'])['params'])
  params, report = models.load_pretrained(init, pretrained)
  assert report.new == ['classifier/bias', 'classifier/kernel']
  assert {p.split('/')[0] for p in report.dropped} == {'decoder', 'lm_head'}
  hidden = lm.apply({'params': pretrained}, data['inputs'], None, data['attention_mask'],
                    method='encode')
  pooled = heads.pool(hidden, data['attention_mask'] > 0, 'mean')
  head = params['classifier']
  np.testing.assert_allclose(classification.logits(model, params, data),
                             pooled @ head['kernel'] + head['bias'], atol=1e-6)
  with pytest.raises(ConversionError, match='T5ForSequenceClassification'):
    hf.classifier_to_hf(model, params)


def test_decoder_last_token_pooling_reads_the_last_real_token():
  data = batch([0, 1, 1, 0])
  lm = models.build(LLAMA)
  pretrained = parallel.unbox(lm.init(jax.random.key(2), data['inputs'])['params'])
  # the untied output layer as a vocabulary-sized head: the classifier then gives the LM's
  # next-token logits at each row's last real token
  model = models.build_classifier(LLAMA, LLAMA.vocab_size, pooling='last')
  init = parallel.unbox(model.init(jax.random.key(1), data['inputs'])['params'])
  params, report = models.load_pretrained(init, pretrained)
  assert report.dropped == ['lm_head/kernel']
  params['classifier'] = {'kernel': pretrained['lm_head']['kernel'],
                          'bias': jnp.zeros(LLAMA.vocab_size)}
  logits = lm.apply({'params': pretrained}, data['inputs'], None, data['attention_mask'])
  last = np.asarray(data['attention_mask']).sum(1)[:3] - 1
  np.testing.assert_allclose(classification.logits(model, params, data)[:3],
                             logits[np.arange(3), last], atol=1e-5)


def test_a_checkpoint_that_does_not_fit_is_refused_by_name():
  """Before anything compiles: shapes alone (``eval_shape``) are checked."""
  tokens = jnp.zeros((1, 8), jnp.int32)
  pretrained = parallel.unbox(jax.eval_shape(models.build(BERT).init, jax.random.key(2),
                                             tokens)['params'])
  init = parallel.unbox(jax.eval_shape(models.build_classifier(BERT, 2).init,
                                       jax.random.key(1), tokens)['params'])
  assert models.check_pretrained(init, pretrained).new == ['classifier/bias',
                                                           'classifier/kernel']
  del pretrained['encoder']['block_1']['mlp']['wo']['kernel']
  pretrained['embed']['embedding'] = jax.ShapeDtypeStruct((31, 16), jnp.float32)
  pretrained['extra'] = {'kernel': jax.ShapeDtypeStruct((2, 2), jnp.float32)}
  with pytest.raises(UsageError) as e:
    models.check_pretrained(init, pretrained)
  message = str(e.value)
  assert 'missing: encoder/block_1/mlp/wo/kernel' in message
  assert 'unexpected: extra/kernel' in message
  assert 'wrong shape: embed/embedding (checkpoint (31, 16), model (30, 16))' in message
  assert 'mlm' not in message  # the MLM head is dropped, not refused


def test_a_pooler_the_checkpoint_lacks_is_new_but_half_of_one_is_missing():
  """MLM pretraining trains no pooler: the classifier initializes one, as Hugging Face does."""
  tokens = jnp.zeros((1, 8), jnp.int32)
  pretrained = parallel.unbox(jax.eval_shape(models.build(BERT).init, jax.random.key(2),
                                             tokens)['params'])
  init = parallel.unbox(jax.eval_shape(
      models.build_classifier(BERT, 2, use_pooler=True).init, jax.random.key(1),
      tokens)['params'])
  del pretrained['pooler']  # BERT here has one; an MLM-only checkpoint would not
  assert sorted(models.check_pretrained(init, pretrained).new) == [
      'classifier/bias', 'classifier/kernel', 'pooler/bias', 'pooler/kernel']
  pretrained['pooler'] = {'kernel': init['pooler']['kernel']}
  with pytest.raises(UsageError, match=r'missing: pooler/bias$'):
    models.check_pretrained(init, pretrained)


@pytest.mark.parametrize('cfg, kwargs, words', [
    (LLAMA, dict(pooling='cls'), 'first token'),
    (BERT, dict(pooling='mean', use_pooler=True), 'pooler'),
    (BERT, dict(head_dropout=1.0), 'head dropout'),
    (BERT, dict(lora=models.LoraConfig(rank=0)), 'rank'),
])
def test_impossible_classifiers_are_refused(cfg, kwargs, words):
  with pytest.raises(UsageError, match=words):
    models.build_classifier(cfg, 2, **kwargs)
