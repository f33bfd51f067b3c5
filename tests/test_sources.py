import os

import pytest

from llm_jax import config as config_lib
from llm_jax import train
from llm_jax.data import sources
from llm_jax.errors import UsageError
from llm_jax.train import checks
from tests.conftest import SHAKESPEARE, TINY
from tests.test_tokenizers import DATA, needs_data


def data_config(tmp_path, **fields):
  data = config_lib.base().data
  data.unlock()
  data.cache_dir = str(tmp_path / 'cache')
  for key, value in fields.items():
    if key in ('train', 'validation', 'test'):
      data.files[key] = value
    else:
      data[key] = value
  return data


def texts(split):
  return [sources.text_of(split[i]) for i in range(len(split))]


def test_text_files_round_trip_exactly(tmp_path):
  a = 'First line ünïcödé\n\nSecond paragraph\twith a tab\r\nand CRLF\n'
  b = 'another file\n'
  (tmp_path / 'a.txt').write_text(a)
  (tmp_path / 'b.txt').write_text(b)
  files = f'{tmp_path}/a.txt,{tmp_path}/b.txt'
  whole = sources.prepare(data_config(tmp_path, corpus='files', train=files,
                                      validation=f'{tmp_path}/b.txt'))
  assert texts(whole.splits['train']) == [a, b] and texts(whole.splits['validation']) == [b]
  lines = sources.prepare(data_config(tmp_path, corpus='files', train=files, unit='line',
                                      val_fraction=0.0))
  assert texts(lines.splits['train']) == a.split('\n')[:-1] + ['another file']
  paragraphs = sources.prepare(data_config(tmp_path, corpus='files', train=files,
                                           unit='paragraph', val_fraction=0.0))
  assert texts(paragraphs.splits['train'])[:2] == ['First line ünïcödé',
                                                   'Second paragraph\twith a tab\r\nand CRLF']


def test_single_file_splits_by_characters_like_nanogpt(tmp_path):
  (tmp_path / 'c.txt').write_text('0123456789' * 10)
  prepared = sources.prepare(data_config(tmp_path, corpus='files', train=f'{tmp_path}/c.txt'))
  assert texts(prepared.splits['train']) == [('0123456789' * 10)[:90]]
  assert texts(prepared.splits['validation']) == ['0123456789']


@pytest.mark.parametrize('fmt, content, fields', [
    ('tsv', 'text\tlabel\ngood one \tpos\nbad\tone\tneg\n', {}),
    ('csv', 'id,review,stars\n1,"good one ",pos\n2,"bad\tone",neg\n',
     {'text_field': 'review', 'label_field': 'stars'}),
    ('jsonl', '{"text": "good one ", "label": "pos"}\n{"text": "bad\\tone", "label": "neg"}\n',
     {}),
])
def test_labelled_files_round_trip_with_a_label_vocabulary(tmp_path, fmt, content, fields):
  path = tmp_path / f'set.{fmt}'
  path.write_text(content)
  prepared = sources.prepare(data_config(
      tmp_path, corpus='files', train=str(path), validation=str(path), format=fmt,
      header=fmt != 'jsonl', labels=('neg', 'pos'), **fields))
  split = prepared.splits['train']
  assert texts(split) == ['good one ', 'bad\tone']
  assert [split[i]['label'] for i in range(2)] == [1, 0]
  assert prepared.label_names == ('neg', 'pos')


def test_prepared_data_is_reused_and_rebuilt_on_change(tmp_path):
  path = tmp_path / 'c.txt'
  path.write_text('some text here\n' * 20)
  config = data_config(tmp_path, corpus='files', train=str(path), unit='line')
  first = sources.prepare(config)
  stamp = os.path.getmtime(os.path.join(first.path, 'clean_report.json'))
  again = sources.prepare(config)
  assert again.path == first.path
  assert os.path.getmtime(os.path.join(again.path, 'clean_report.json')) == stamp
  config.clean = ('dedup',)
  with pytest.raises(UsageError, match=r'1 record.* too few to hold out'):
    sources.prepare(config)  # one line is left: none to hold out for validation
  path.write_text('some text here\n' * 20 + ''.join(f'line {i}\n' for i in range(10)))
  deduped = sources.prepare(config)
  assert deduped.report['steps'][0]['dropped'] == 19  # dedup before the validation cut
  assert len(deduped.splits['train']) + len(deduped.splits['validation']) == 11
  path.write_text(''.join(f'other text {i}\n' for i in range(20)))
  assert sources.prepare(config).path not in (first.path, deduped.path)


def test_embedded_shakespeare_is_the_default_with_nanogpts_split(tmp_path):
  config = data_config(tmp_path, data_dir=str(tmp_path / 'nowhere'))
  prepared = sources.prepare(config)
  train_text, val_text = texts(prepared.splits['train']), texts(prepared.splits['validation'])
  assert (len(train_text[0]), len(val_text[0])) == (1_003_854, 111_540)
  assert train_text[0].startswith('First Citizen:')


@pytest.mark.slow
@needs_data
def test_named_corpora_have_their_standard_splits(tmp_path):
  counts = {'sst2': {'train': 67_349, 'validation': 872}, 'ptb': {'train': 42_068,
            'validation': 3_370, 'test': 3_761}}
  for name, expected in counts.items():
    prepared = sources.prepare(data_config(tmp_path, corpus=name, data_dir=DATA,
                                           unit='line'))
    assert {s: len(v) for s, v in prepared.splits.items()} == expected
  sst2 = sources.prepare(data_config(tmp_path, corpus='sst2', data_dir=DATA))
  labels = [sst2.splits['validation'][i]['label'] for i in range(872)]
  assert sum(labels) == 444
  assert texts(sst2.splits['validation'])[0] == "it 's a charming and often affecting journey . "
  uci = sources.prepare(data_config(tmp_path, corpus='sentiment', data_dir=DATA,
                                    val_fraction=0.0))
  assert len(uci.splits['train']) == 3_000  # the two U+0085 inside imdb lines split nothing


def write(tmp_path, name, content: bytes):
  path = tmp_path / name
  path.write_bytes(content)
  return str(path)


@pytest.mark.parametrize('fields, message', [
    (lambda p: dict(corpus='files', train=str(p / 'missing.txt')), 'missing.txt does not exist'),
    (lambda p: dict(corpus='files', train=write(p, 'bad.txt', b'ok\nfine\n\xff\xfe\n'),
                    unit='line'), r'bad.txt:3: byte 0xff is not valid UTF-8'),
    (lambda p: dict(corpus='files', train=write(p, 'e.txt', b'a\nb\n'), unit='line',
                    clean=('min_chars:5',)),
     "split 'train' of files is empty after clean step 'min_chars:5'; loosen data.clean"),
    (lambda p: dict(corpus='files', train=write(p, 'empty.txt', b'')), r'empty.txt is empty'),
    (lambda p: dict(corpus='files', train=write(p, 'h.tsv', b'text\tlabel\n'), format='tsv',
                    header=True), r'h.tsv has only a header line'),
    (lambda p: dict(corpus='files', train=write(p, 'one.txt', b'a' * 10_000_000), unit='line'),
     r"one.txt: 1 record\(s\) \(data.unit='line'\) are too few to hold out "
     r".*or data.unit='file'"),
    (lambda p: dict(corpus='files', train=write(p, 'c.csv', b't,l\nhello,1\nbye\n'),
                    format='csv', header=True, labels=('0', '1')), r'c.csv:3: has 1 column'),
    (lambda p: dict(corpus='files', train=write(p, 'l.tsv', b'good\tpos\nmeh\tneutral\n'),
                    format='tsv', labels=('neg', 'pos')),
     r"l.tsv:2: label 'neutral' is not in the label vocabulary"),
    (lambda p: dict(corpus='files', train=write(p, 'j.jsonl', b'{"body": "x", "label": 1}\n'),
                    format='jsonl'), r"j.jsonl:1: no field 'text'"),
    (lambda p: dict(corpus='tfds:imdb_reviews'), 'LLM_JAX_OFFLINE=1; offline, point the config'),
    (lambda p: dict(corpus='tfds:no_such_dataset'), 'offline, point the config at local files'),
    (lambda p: dict(corpus='wikitext'), "unknown data.corpus 'wikitext'"),
])
def test_bad_input_fails_with_one_line_naming_the_fix(tmp_path, monkeypatch, fields, message):
  monkeypatch.setenv('LLM_JAX_OFFLINE', '1')  # CI has no network: fail at once, not after retries
  with pytest.raises(UsageError, match=message) as info:
    sources.prepare(data_config(tmp_path, **fields(tmp_path)))
  assert '\n' not in str(info.value)


def test_a_tokenizer_larger_than_the_model_is_refused(tmp_path):
  config = checks.load(SHAKESPEARE, TINY + ['model.vocab_size=40'])
  with pytest.raises(config_lib.ConfigError, match='smaller than the tokenizer'):
    train.run(config, str(tmp_path), progress=False)


def test_duplicates_never_straddle_the_validation_cut(tmp_path):
  """A CSV whose second half repeats its first (the old tail cut put each repeat in
  validation and its original in train): dedup runs before the held-out draw, the draw is
  seeded and keeps the class balance, and the report counts the drops."""
  rows = [f'text {i} is {"good" if i % 4 else "bad"},{"pos" if i % 4 else "neg"}'
          for i in range(40)]
  path = tmp_path / 'rows.csv'
  path.write_text('\n'.join(rows + rows + rows[:10]) + '\n')
  config = data_config(tmp_path, corpus='files', train=str(path), format='csv',
                       val_fraction=0.25, clean=('dedup',))
  prepared = sources.prepare(config)
  train_texts, val_texts = texts(prepared.splits['train']), texts(prepared.splits['validation'])
  assert not set(train_texts) & set(val_texts)
  assert prepared.report['steps'][0]['dropped'] == 50
  # a quarter of each class (rounded up): 8 of the 30 positives, 3 of the 10 negatives
  labels = [prepared.splits['validation'][i]['label'] for i in range(len(val_texts))]
  assert (len(train_texts), len(val_texts)) == (29, 11)
  assert labels.count(prepared.label_names.index('neg')) == 3
  config.split_seed = 1
  assert texts(sources.prepare(config).splits['validation']) != val_texts


def test_a_training_copy_of_a_published_validation_record_is_dropped(tmp_path):
  (tmp_path / 'train.txt').write_text('alpha\nbeta\ngamma\n')
  (tmp_path / 'valid.txt').write_text('beta\ndelta\n')
  prepared = sources.prepare(data_config(
      tmp_path, corpus='files', train=str(tmp_path / 'train.txt'),
      validation=str(tmp_path / 'valid.txt'), unit='line', clean=('dedup',)))
  assert texts(prepared.splits['train']) == ['alpha', 'gamma']
  assert texts(prepared.splits['validation']) == ['beta', 'delta']
  assert prepared.report['steps'][0]['dropped_by_split'] == {'validation': 0, 'train': 1}
