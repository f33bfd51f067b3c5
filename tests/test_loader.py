import functools
import itertools
import threading

import jax
import numpy as np
import pytest

from llm_jax import parallel
from llm_jax.data import batching, loader, tokenizers
from llm_jax.models import DecoderLM, TransformerConfig
from llm_jax.tasks import causal_lm

DOCS = ['the cat sat', 'a dog ran far away from home today', 'hi', 'one two three four five',
        'birds sing', 'x y z', 'we packed these words into rows', 'end']


@pytest.fixture(scope='module')
def word_tok():
  return tokenizers.WordTokenizer.from_texts(DOCS)


def source():
  return [{'text': d} for d in DOCS]


def lm_packed(tok, seq_len, batch_size, seed=0, **kwargs):
  """Causal-LM packing of DOCS, framed [eos] doc -> doc [eos]."""
  def frame(record):
    return causal_lm.frame(tok.encode(record['text']), tok.special['eos'])
  return loader.packed(loader.documents(source(), frame), {'inputs': seq_len, 'targets': seq_len},
                       functools.partial(causal_lm.packed_batch, cross_document=False),
                       batch_size, seed, **kwargs)


def take(dataset_or_iterator, n):
  return list(itertools.islice(iter(dataset_or_iterator), n))


def segments(batches):
  """Each packed segment's targets, in order of appearance."""
  out = []
  for batch in batches:
    for r in range(batch['inputs'].shape[0]):
      for seg in sorted(set(batch['segment_ids'][r]) - {0}):
        where = batch['segment_ids'][r] == seg
        assert np.all(np.diff(batch['positions'][r][where]) == 1)  # contiguous, restarting
        out.append(tuple(batch['targets'][r][where]))
  return out


def test_packed_rows_hold_whole_documents_framed_by_eos(word_tok):
  eos = word_tok.special['eos']
  rows = take(lm_packed(word_tok, 8, 4, seed=0, train=False), 100)
  targets = np.concatenate(segments(rows))
  expected = np.concatenate([np.append(word_tok.encode(d), eos) for d in DOCS])
  np.testing.assert_array_equal(targets, expected)  # every token once, in order, no padding
  for batch in rows:
    np.testing.assert_array_equal(batch['loss_mask'], batch['segment_ids'] > 0)


@pytest.mark.slow
def test_packing_never_lets_a_token_attend_across_documents(word_tok):
  cfg = TransformerConfig(vocab_size=word_tok.vocab_size, d_model=32, num_heads=4,
                          num_layers=2, max_len=16)
  model = DecoderLM(cfg)
  params = parallel.unbox(model.init(jax.random.key(0), np.zeros((1, 16), np.int32))['params'])
  apply = jax.jit(model.apply)
  batch = take(lm_packed(word_tok, 16, 2, seed=0, train=False), 1)[0]
  logits = apply({'params': params}, batch['inputs'], batch['positions'], batch['segment_ids'])
  checked = 0
  for r in range(2):
    for seg in set(batch['segment_ids'][r]) - {0}:
      where = np.flatnonzero(batch['segment_ids'][r] == seg)
      alone = np.zeros((1, 16), np.int32)  # right padding: causal attention never sees it
      alone[0, :len(where)] = batch['inputs'][r, where]
      alone_logits = apply({'params': params}, alone)[0, :len(where)]
      np.testing.assert_allclose(logits[r, where], alone_logits, atol=1e-5)
      checked += 1
  assert checked >= 3


@pytest.mark.parametrize('kind', ['packed', 'windows'])
def test_a_resumed_loader_yields_the_remaining_batches(word_tok, kind):
  if kind == 'packed':
    def dataset():
      return lm_packed(word_tok, 8, 2, seed=3)
  else:
    ids = np.arange(500, dtype=np.int32)

    def dataset():
      return loader.windows(ids, 4, 16, seed=3)
  straight = loader.Resumable(dataset())
  expected = [next(straight) for _ in range(12)]
  first = loader.Resumable(dataset())
  for _ in range(5):  # mid-epoch: 8 documents make 5 or 6 packed batches an epoch
    next(first)
  state = first.state()
  resumed = loader.Resumable(dataset(), state)
  for want in expected[5:]:
    got = next(resumed)
    for key in want:
      np.testing.assert_array_equal(got[key], want[key])


def test_in_memory_batches_are_read_without_threads():
  """grain's default read-ahead starts 16 threads that take the step's cores (pitfall 24)."""
  ids = np.arange(500, dtype=np.int32)
  before = threading.active_count()
  batches = loader.Resumable(loader.windows(ids, 4, 16, seed=3))
  got = [next(batches) for _ in range(3)]
  assert threading.active_count() == before
  np.testing.assert_array_equal(got[2]['inputs'], loader.windows(ids, 4, 16, seed=3)[2]['inputs'])


class CountedSource(list):
  """Records that count how often each is read."""

  def __init__(self, records):
    super().__init__(records)
    self.reads = [0] * len(records)

  def __getitem__(self, i):
    self.reads[i] += 1
    return super().__getitem__(i)


def test_documents_are_framed_once_and_packed_as_streamed_ones(word_tok, monkeypatch):
  """A small split is read and framed once, not at every epoch; its batches (three epochs of
  them) are those of the split streamed from its records, and no read-ahead thread starts."""
  def frame(record):
    return causal_lm.frame(word_tok.encode(record['text']), word_tok.special['eos'])

  def batches(records):
    before = threading.active_count()
    dataset = loader.packed(loader.documents(records, frame), {'inputs': 8, 'targets': 8},
                            functools.partial(causal_lm.packed_batch, cross_document=False),
                            2, 3)
    got = take(dataset, 18)  # 8 documents make 5 or 6 batches an epoch
    assert threading.active_count() == before
    return got

  held = CountedSource(source())
  from_memory = batches(held)
  assert held.reads == [1] * len(DOCS)
  monkeypatch.setattr(loader, 'IN_MEMORY_DOCUMENTS', 0)
  streamed = CountedSource(source())
  from_records = batches(streamed)
  assert min(streamed.reads) >= 3
  for a, b in zip(from_memory, from_records, strict=True):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])


def test_epochs_are_reshuffled_by_seed(word_tok):
  def first_rows(seed):
    batches = take(lm_packed(word_tok, 64, 1, seed=seed), 4)
    return [b['inputs'][0, :6].tolist() for b in batches]
  assert first_rows(1) == first_rows(1)
  assert first_rows(1) != first_rows(2)


def test_processes_read_disjoint_shards(word_tok):
  shards = []
  for index in range(2):
    batches = take(lm_packed(word_tok, 16, 4, seed=0, process_index=index,
                                 process_count=2, train=False), 50)
    assert all(b['inputs'].shape == (2, 16) for b in batches)  # the local half of the batch
    stream = ' '.join(word_tok.decode(np.concatenate(segments(batches))).split())
    shards.append({d.strip() for d in stream.split('<eos>') if d.strip()})
  assert not shards[0] & shards[1]
  assert shards[0] | shards[1] == set(DOCS)


def test_windows_of_any_process_count_make_the_same_global_batch():
  ids = np.arange(1000, dtype=np.int32)
  whole = next(iter(loader.windows(ids, 4, 8, seed=1)))
  halves = [next(iter(loader.windows(ids, 4, 8, seed=1, process_index=i, process_count=2)))
            for i in range(2)]
  np.testing.assert_array_equal(np.concatenate([h['inputs'] for h in halves]), whole['inputs'])


def test_classification_padding_truncation_and_buckets():
  rows = batching.pad_classification([np.array([5, 6, 7, 8, 9]), np.array([5])], max_len=5,
                                     pad_id=0, cls_id=1, sep_id=2)
  np.testing.assert_array_equal(rows['inputs'], [[1, 5, 6, 7, 2], [1, 5, 2, 0, 0]])
  np.testing.assert_array_equal(rows['attention_mask'], [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
  assert batching.bucket_length(17, 128) == 32 and batching.bucket_length(120, 100) == 100
  lengths = np.array([30, 2, 29, 3, 31, 1, 28, 4])
  order = batching.bucketed_order(lengths, np.arange(8), 2, window=4,
                                  rng=np.random.default_rng(0))
  assert sorted(order.tolist()) == list(range(8))
  pairs = [sorted(lengths[order[i:i + 2]]) for i in range(0, 8, 2)]
  assert sorted(pairs) == [[1, 2], [3, 4], [28, 29], [30, 31]]


@pytest.mark.slow
def test_worker_processes_resume_exactly(word_tok):
  def dataset():
    return lm_packed(word_tok, 8, 2, seed=3, workers=2)
  straight = loader.Resumable(dataset())
  expected = [next(straight) for _ in range(8)]
  first = loader.Resumable(dataset())
  for _ in range(3):
    next(first)
  resumed = loader.Resumable(dataset(), first.state())
  for want in expected[3:]:
    got = next(resumed)
    np.testing.assert_array_equal(got['inputs'], want['inputs'])
