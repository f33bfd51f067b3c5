"""Where records come from: tfds builders prepared as ArrayRecord, read without TensorFlow.

Local text corpora and labelled files, the corpora of the data directory (``SOURCES.md``)
and tfds catalog names all end as ``tfds.data_source``-style random-access splits of
``{'text': str[, 'label': int | float]}`` records. A local source is prepared once into the
cache directory under a name that hashes its files' contents and every setting (cleaning
included), so an edited file or a changed setting rebuilds it and nothing else does.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import gzip
import hashlib
import importlib.resources
import io
import json
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import ml_collections
import numpy as np

from llm_jax import fileio, host, quiet
from llm_jax.data import chat, clean
from llm_jax.errors import UsageError

# Named corpora, relative to the data directory (CI points it at ../shared/data).
NAMED: dict[str, dict[str, Any]] = {
    'tinyshakespeare': dict(files={'train': ('tinyshakespeare/input.txt',)}, unit='file'),
    'ptb': dict(files={'train': ('ptb/ptb.train.txt.gz',), 'validation': ('ptb/ptb.valid.txt.gz',),
                       'test': ('ptb/ptb.test.txt.gz',)}, unit='line'),
    'sst2': dict(files={'train': ('sst2/train.tsv',), 'validation': ('sst2/dev.tsv',)},
                 format='tsv', header=True, labels=('0', '1')),
    # images and labels in MNIST's IDX format (data/features.py reads them, for an MLP)
    'fashion_mnist': dict(files={'train': ('fashion_mnist/train-images-idx3-ubyte.gz',),
                                 'test': ('fashion_mnist/t10k-images-idx3-ubyte.gz',)},
                          format='idx', labels=('T-shirt/top', 'Trouser', 'Pullover', 'Dress',
                                                'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag',
                                                'Ankle boot')),
    'sentiment': dict(files={'train': tuple(f'sentiment_labelled_sentences/{n}_labelled.txt'
                                            for n in ('amazon_cells', 'imdb', 'yelp'))},
                      format='tsv', header=False, labels=('0', '1')),
}
# Corpora shipped inside the package: a fresh clone trains on these with no data directory.
EMBEDDED = {'tinyshakespeare': 'tinyshakespeare.txt.gz'}
UNITS = ('file', 'line', 'paragraph')
# chat: JSONL conversations ("messages", or "prompt" and "response"), kept as their JSON text
# idx: numeric arrays (MNIST's format; data/features.py), for model.kind='mlp'
FORMATS = ('text', 'tsv', 'csv', 'jsonl', 'chat', 'idx')


@dataclasses.dataclass(frozen=True)
class Spec:
  """A local source resolved to absolute files and every setting that shapes its records."""

  name: str
  files: tuple[tuple[str, tuple[str, ...]], ...]  # (split, files) pairs
  format: str = 'text'
  unit: str = 'file'
  val_fraction: float = 0.0
  header: bool = False
  text_field: str = ''
  label_field: str = ''
  labels: tuple[str, ...] = ()
  regression: bool = False
  text_pair_field: str = ''  # a second text per record (sentence pairs)
  label_text: bool = False  # labels are texts (seq2seq targets), kept as strings
  clean: tuple[str, ...] = ()
  split_seed: int = 0  # draws the held-out validation records (val_fraction)
  parts: tuple[Spec, ...] = ()  # a mixture ('ptb+sst2'): the texts of these, split by split

  @property
  def labelled(self) -> bool:
    return self.format not in ('text', 'chat')


def data_dir(data: ml_collections.ConfigDict) -> str:
  return data.data_dir or os.environ.get('LLM_JAX_DATA_DIR', 'data')


def cache_dir(data: ml_collections.ConfigDict) -> str:
  return os.path.expanduser(data.cache_dir) if data.cache_dir else host.cache_root()


def _embedded_path(name: str) -> str:
  return str(importlib.resources.files('llm_jax.data') / 'corpora' / EMBEDDED[name])


def resolve(data: ml_collections.ConfigDict) -> Spec:
  """The config's data section as a Spec: a named corpus or the files it lists."""
  corpus = data.corpus
  val_fraction = 0.0 if data.cv_folds else data.val_fraction  # folds cut all of train
  common = dict(clean=tuple(data.clean), split_seed=data.split_seed, text_field=data.text_field,
                label_field=data.label_field, regression=data.regression,
                text_pair_field=data.text_pair_field, label_text=data.label_text)
  if '+' in corpus:  # a mixture: every part's texts, labels dropped, cleaned as one corpus
    parts = []
    for name in corpus.split('+'):
      part = ml_collections.ConfigDict(data.to_dict())
      part.corpus, part.clean = name, ()
      parts.append(resolve(part))
    return Spec(corpus, (), clean=common['clean'], parts=tuple(parts))
  if corpus == 'files':
    files = tuple((split, tuple(f for f in getattr(data.files, split).split(',') if f))
                  for split in ('train', 'validation', 'test') if getattr(data.files, split))
    if not files or files[0][0] != 'train':
      raise UsageError('data.corpus="files" needs data.files.train (comma-separated paths)')
    return Spec('files', files, data.format, data.unit, val_fraction, data.header,
                labels=tuple(data.labels), **common)
  if corpus not in NAMED:
    raise UsageError(f'unknown data.corpus {corpus!r}: use one of {sorted(NAMED)}, a '
                     'mixture of them ("ptb+sst2"), '
                     '"files" (with data.files.train=...) or "tfds:NAME"')
  named = dict(NAMED[corpus])
  root = data_dir(data)
  files = []
  for split, paths in named.pop('files').items():
    full = tuple(os.path.join(root, p) for p in paths)
    if corpus in EMBEDDED and not all(os.path.exists(p) for p in full):
      full = (_embedded_path(corpus),)
    files.append((split, full))
  # a corpus without a validation file gets one cut off its training data
  if any(split == 'validation' for split, _ in files):
    val_fraction = 0.0
  return Spec(corpus, tuple(files), val_fraction=val_fraction, **named, **common)


def _read_bytes(path: str) -> bytes:
  if not os.path.isfile(path):
    raise UsageError(f'data file {path} does not exist; set data.data_dir (or LLM_JAX_DATA_DIR) '
                     'to the folder that holds it')
  with open(path, 'rb') as f:
    return f.read()


def read_text(path: str) -> str:
  """A UTF-8 (optionally gzipped) file's text; bad bytes are reported by file and line."""
  raw = _read_bytes(path)
  if path.endswith('.gz'):
    raw = gzip.decompress(raw)
  try:
    return raw.decode('utf-8')
  except UnicodeDecodeError as e:
    line = raw[:e.start].count(b'\n') + 1
    raise UsageError(f'{path}:{line}: byte 0x{raw[e.start]:02x} is not valid UTF-8; re-encode '
                     'the file as UTF-8') from None


def _units(text: str, unit: str) -> list[str]:
  """A file's documents: the whole file, each line, or each blank-line-separated paragraph.

  Lines split on ``\\n`` only: ``str.splitlines`` would also split on U+0085 and friends,
  which occur inside sentences of real corpora.
  """
  if unit == 'file':
    return [text] if text else []
  if unit == 'line':
    lines = text.split('\n')
    return lines[:-1] if lines and lines[-1] == '' else lines
  return [p.strip('\n') for p in text.split('\n\n') if p.strip()]


def _field(row: Sequence[str] | dict, field: str, default: int, where: str,
           header: list[str] | None) -> Any:
  """A row's column by header name or index (``field``), or ``default`` if none is set."""
  if isinstance(row, dict):
    if field not in row:
      raise UsageError(f'{where}: no field {field!r} (fields: {", ".join(row)}); set '
                       'data.text_field / data.label_field')
    return row[field]
  if len(row) < 2:
    raise UsageError(f'{where}: has {len(row)} column(s), expected a text and a label')
  if not field:
    index = default
  elif header and field in header:
    index = header.index(field)
  elif field.lstrip('-').isdigit():
    index = int(field)
  else:
    raise UsageError(f'{where}: no column {field!r} (header: {header}); set data.text_field '
                     '/ data.label_field to a column name or index')
  if not -len(row) <= index < len(row):
    raise UsageError(f'{where}: has {len(row)} column(s), column {index} is missing')
  return row[index]


def _labelled_rows(path: str, spec: Spec) -> list[dict]:
  text = read_text(path)
  lines = text.split('\n')
  if lines and lines[-1] == '':
    lines.pop()
  header = None
  if spec.format == 'jsonl':
    if not spec.text_field:
      spec = dataclasses.replace(spec, text_field='text', label_field=spec.label_field or 'label')
    rows = []
    for n, line in enumerate(lines, 1):
      try:
        rows.append((n, json.loads(line)))
      except json.JSONDecodeError as e:
        raise UsageError(f'{path}:{n}: not a JSON object ({e.msg})') from None
  elif spec.format == 'csv':
    parsed = list(csv.reader(io.StringIO(text)))
    rows = list(enumerate(parsed, 1))
  elif spec.text_pair_field:  # tsv of several text columns: every tab separates
    rows = [(n, line.split('\t')) for n, line in enumerate(lines, 1)]
  else:  # tsv: the label is after the last tab, so a text may itself hold tabs
    rows = [(n, line.rsplit('\t', 1)) for n, line in enumerate(lines, 1)]
  if spec.header and spec.format != 'jsonl':
    header = list(rows[0][1]) if rows else []
    rows = rows[1:]
  records = []
  for n, row in rows:
    where = f'{path}:{n}'
    text_value = _field(row, spec.text_field, 0, where, header)
    label_value = str(_field(row, spec.label_field, -1, where, header))
    record = {'text': text_value, 'label': label_value if spec.label_text else
              label_value.strip(), '_where': where}
    if spec.text_pair_field:
      record['text_pair'] = _field(row, spec.text_pair_field, 1, where, header)
    records.append(record)
  return records


def _file_records(path: str, spec: Spec) -> list[dict]:
  """One file's records; a file that holds none is refused by name."""
  if spec.labelled:
    records = _labelled_rows(path, spec)
    if not records:
      shape = 'only a header line' if spec.header and read_text(path).strip() else 'no rows'
      raise UsageError(f'data file {path} has {shape}; give a file with labelled rows')
    return records
  if spec.format == 'chat':
    records = _conversations(path)
  else:
    records = [{'text': t} for t in _units(read_text(path), spec.unit)]
  if not records:
    raise UsageError(f'data file {path} is empty; give a file with text')
  return records


def _conversations(path: str) -> list[dict]:
  """A chat JSONL file's records, each conversation as the JSON of its messages (so that
  cleaning and dedup see one text per conversation)."""
  records = []
  for n, line in enumerate(read_text(path).split('\n'), 1):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
    except json.JSONDecodeError as e:
      raise UsageError(f'{path}:{n}: not a JSON object ({e.msg})') from None
    if not isinstance(record, dict):
      raise UsageError(f'{path}:{n}: not a JSON object')
    messages = chat.messages_of(record, f'{path}:{n}')
    records.append({'text': json.dumps(messages, ensure_ascii=False)})
  return records


def _records(spec: Spec) -> dict[str, list[dict]]:
  """Every split's records, before cleaning, as the files publish them."""
  splits: dict[str, list[dict]] = {}
  for part in spec.parts:  # each part as it would be alone (its held-out cut included)
    for split, records in _cleaned(part)[0].items():
      splits.setdefault(split, []).extend({'text': r['text']} for r in records)
  for split, paths in spec.files:
    splits[split] = [r for path in paths for r in _file_records(path, spec)]
  return splits


def _cuts_characters(spec: Spec, splits: dict[str, list[dict]]) -> bool:
  """nanoGPT's split of one text: the first 1 - val_fraction of its characters train."""
  return (bool(spec.val_fraction) and 'validation' not in splits and not spec.labelled
          and spec.unit == 'file' and len(splits['train']) == 1)


def held_out(records: list[dict], fraction: float, seed: int, stratify: bool
             ) -> tuple[list[dict], list[dict]]:
  """(train, validation): ``fraction`` of the records drawn by ``seed`` (per label, so that
  both keep the class balance, with ``stratify``); each keeps the records' order."""
  rng = np.random.default_rng(seed)
  groups: dict[Any, list[int]] = {}
  for i, r in enumerate(records):
    groups.setdefault(r['label'] if stratify else None, []).append(i)
  chosen = set()
  for members in groups.values():
    count = len(members) - int(len(members) * (1.0 - fraction))
    chosen.update(np.asarray(members)[rng.permutation(len(members))[:count]].tolist())
  return ([r for i, r in enumerate(records) if i not in chosen],
          [r for i, r in enumerate(records) if i in chosen])


def _label_ids(splits: dict[str, list[dict]], spec: Spec) -> tuple[str, ...]:
  """Replaces label strings by ids in the label vocabulary (or floats for regression)."""
  names = spec.labels or tuple(sorted({r['label'] for r in splits.get('train', [])}))
  index = {name: i for i, name in enumerate(names)}
  for records in splits.values():
    for r in records:
      where = r.pop('_where')
      if spec.label_text:
        continue
      if spec.regression:
        try:
          r['label'] = float(r['label'])
        except ValueError:
          raise UsageError(f'{where}: label {r["label"]!r} is not a number') from None
      elif r['label'] not in index:
        raise UsageError(f'{where}: label {r["label"]!r} is not in the label vocabulary '
                         f'{list(names)}; fix the row or set data.labels')
      else:
        r['label'] = index[r['label']]
  return () if spec.regression or spec.label_text else names


def _fingerprint(spec: Spec) -> str:
  h = hashlib.sha256(json.dumps(dataclasses.asdict(spec), sort_keys=True).encode())
  for path in _paths(spec):
    h.update(hashlib.sha256(_read_bytes(path)).digest())
  return h.hexdigest()[:16]


def _paths(spec: Spec) -> list[str]:
  return ([path for _, paths in spec.files for path in paths] +
          [path for part in spec.parts for path in _paths(part)])


@dataclasses.dataclass
class Prepared:
  """Random-access splits of records, their label names, and the cleaning report."""

  splits: dict[str, Any]
  label_names: tuple[str, ...]
  report: dict
  path: str


@functools.cache
def _builder_class():
  """The tfds builder, defined lazily (importing tfds costs a second) and once (tfds
  registers every builder class by name)."""
  import tensorflow_datasets as tfds

  class LocalSource(tfds.core.GeneratorBasedBuilder):
    """Records of one resolved Spec, written once as ArrayRecord in document order."""

    VERSION = tfds.core.Version('1.0.0')

    def __init__(self, *, spec: Spec, splits, label_names, **kwargs):
      self._spec, self._splits, self._label_names = spec, splits, label_names
      super().__init__(**kwargs)
      self._original_state.update(file_format=kwargs.get('file_format'))

    def __getstate__(self):
      """What grain's worker processes need to reopen the prepared splits (not the records:
      once prepared, they are read from disk)."""
      return {'_original_state': self._original_state, 'spec': self._spec,
              'label_names': self._label_names}

    def __setstate__(self, state):
      self.__init__(spec=state['spec'], splits={}, label_names=state['label_names'],
                    **state['_original_state'])

    def _info(self):
      features = {'text': tfds.features.Text()}
      if self._spec.text_pair_field:
        features['text_pair'] = tfds.features.Text()
      if self._spec.label_text:
        features['label'] = tfds.features.Text()
      elif self._spec.labelled:
        features['label'] = (tfds.features.Scalar('float32') if self._spec.regression else
                             tfds.features.ClassLabel(names=list(self._label_names)))
      # an LM corpus keeps its documents' order; loaders shuffle per epoch themselves
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features),
                                   disable_shuffling=True)

    def _split_generators(self, dl_manager):
      return {split: self._generate_examples(records)
              for split, records in self._splits.items()}

    def _generate_examples(self, records):
      yield from enumerate(records)

  return LocalSource


def _open_splits(builder) -> dict[str, Any]:
  return {split: builder.as_data_source(split) for split in builder.info.splits}


def _cleaned(spec: Spec) -> tuple[dict[str, list[dict]], tuple[str, ...], dict]:
  """Every split's records, labels as ids, cleaned; and the cleaning report.

  Cleaning (dedup included) runs over all splits at once and before a validation split is
  drawn, so no record sits in two splits: a training copy of a published validation or test
  record is dropped. Published splits stay as published; a source without a validation split
  has ``val_fraction`` of its records drawn by ``split_seed`` (stratified by label), except a
  single text, which is cut by characters as nanoGPT cuts Shakespeare.
  """
  splits = _records(spec)
  label_names = _label_ids(splits, spec) if spec.labelled else ()
  if _cuts_characters(spec, splits):
    text = splits['train'][0]['text']
    cut = int(len(text) * (1.0 - spec.val_fraction))
    splits['train'], splits['validation'] = [{'text': text[:cut]}], [{'text': text[cut:]}]
  order = [s for s in ('validation', 'test') if s in splits] + ['train']
  splits, steps = clean.run_splits({s: splits[s] for s in order}, spec.clean)
  for split, records in splits.items():
    if not records:
      emptied = next(e['step'] for e in steps if e['dropped_by_split'].get(split))
      raise UsageError(f'split {split!r} of {spec.name} is empty after clean step '
                       f'{emptied!r}; loosen data.clean')
  report = {'steps': steps}
  if spec.val_fraction and 'validation' not in splits:
    stratify = spec.labelled and not (spec.regression or spec.label_text)
    splits['train'], splits['validation'] = held_out(splits['train'], spec.val_fraction,
                                                     spec.split_seed, stratify)
    report['held_out'] = {'fraction': spec.val_fraction, 'seed': spec.split_seed,
                          'stratified': stratify}
    for split in ('train', 'validation'):
      if not splits[split]:
        files = ', '.join(dict(spec.files).get('train', ())) or spec.name
        raise UsageError(
            f'{files}: {len(splits["train"]) + len(splits["validation"])} record(s) (data.unit='
            f'{spec.unit!r}) are too few to hold out data.val_fraction={spec.val_fraction} and '
            f'keep a training split; give data.files.validation, more records'
            + (", or data.unit='file' (a text's characters are cut instead)"
               if not spec.labelled and spec.unit != 'file' else ''))
  report['records'] = {split: len(records) for split, records in splits.items()}
  return splits, label_names, report


def prepare_local(spec: Spec, cache: str) -> Prepared:
  """Builds (or reuses) the ArrayRecord copy of a local source.

  The report is written last, so its presence marks a complete preparation; tfds itself
  writes into a temporary directory and renames it, so a killed preparation leaves nothing
  that looks finished.
  """
  import tensorflow_datasets as tfds
  config_name = f'{spec.name}-{_fingerprint(spec)}'
  root = os.path.join(cache, 'tfds')
  path = os.path.join(root, 'local_source', config_name)
  report_path = os.path.join(path, 'clean_report.json')
  ready = os.path.exists(report_path)
  if ready:
    with open(report_path) as f:
      saved = json.load(f)
    splits, label_names, report = {}, tuple(saved['label_names']), saved['clean']
  else:
    splits, label_names, report = _cleaned(spec)
  with quiet.absl_warnings():
    tfds.disable_progress_bar()
    builder = _builder_class()(spec=spec, splits=splits, label_names=label_names,
                               config=tfds.core.BuilderConfig(name=config_name),
                               data_dir=root, file_format='array_record')
    if not ready:
      with contextlib.redirect_stdout(sys.stderr):  # tfds prints progress; stdout is the result's
        builder.download_and_prepare()
      fileio.write_atomic(report_path, json.dumps({'label_names': list(label_names),
                                                   'clean': report}, indent=1))
    return Prepared(_open_splits(builder), label_names, report, path)


def prepare_catalog(name: str, cache: str) -> Prepared:
  """A tfds catalog dataset, downloaded and prepared as ArrayRecord on first use.

  Offline, a download fails only after tfds's retries (minutes); ``LLM_JAX_OFFLINE=1`` makes
  a dataset that is not prepared yet fail at once.
  """
  import tensorflow_datasets as tfds
  root = os.path.join(cache, 'tfds')
  fix = 'point the config at local files instead: data.corpus="files" with data.files.train=PATH'
  try:
    with quiet.absl_warnings():
      builder = tfds.builder(name, data_dir=root, file_format='array_record')
      if not builder.is_prepared():
        if os.environ.get('LLM_JAX_OFFLINE') == '1':
          raise UsageError(f'tfds dataset {name!r} is not prepared in {root} and '
                           f'LLM_JAX_OFFLINE=1; offline, {fix}')
        builder.download_and_prepare()
  except UsageError:
    raise
  except Exception as e:  # offline, unknown name, missing extras: all end the same way
    raise UsageError(f'could not prepare tfds dataset {name!r} ({type(e).__name__}: '
                     f'{str(e).splitlines()[0][:120] if str(e) else ""}); offline, {fix}') from None
  label = builder.info.features.get('label') if hasattr(builder.info.features, 'get') else None
  names = tuple(label.names) if label is not None and hasattr(label, 'names') else ()
  return Prepared(_open_splits(builder), names, {}, os.path.join(root, builder.name))


def prepare(data: ml_collections.ConfigDict) -> Prepared:
  if data.corpus.startswith('tfds:'):
    return prepare_catalog(data.corpus[len('tfds:'):], cache_dir(data))
  return prepare_local(resolve(data), cache_dir(data))


def records(source, chunk: int = 8192) -> Iterator[dict]:
  """Every record of a split, in order. An ArrayRecord source reads in batches of ``chunk`` on
  parallel threads (``__getitems__``): record by record, SST-2's 67k sentences took 25 s, 6 s
  so."""
  if not hasattr(source, '__getitems__'):
    yield from (source[i] for i in range(len(source)))
    return
  for start in range(0, len(source), chunk):
    yield from source.__getitems__(list(range(start, min(start + chunk, len(source)))))


def read_all(source) -> list[dict]:
  """Every record of a split, in order, in a list (``records``)."""
  return list(records(source))


def in_memory(prepared: Prepared) -> Prepared:
  """``prepared`` with every split read into a list once, for pipelines that read all of it
  (several times: the vocabulary, then the encoding) rather than sample it."""
  return dataclasses.replace(prepared, splits={split: read_all(source)
                                               for split, source in prepared.splits.items()})


def text_of(record: dict, text_field: str = '') -> str:
  """A record's text as str (tfds stores text as bytes; catalog sets name the field)."""
  value = record[text_field] if text_field and text_field in record else record['text']
  return value.decode('utf-8') if isinstance(value, bytes) else value
