"""A config's data section, end to end: source -> tokenizer -> train and eval batches.

This is the one place the training loop asks for data; it hands back numpy batches and
knows no model.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import os
from collections.abc import Callable, Iterable
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from llm_jax import fileio, tasks
from llm_jax.data import features, lm, loader, nsp, seq2seq, sft, sources, tokenizers
from llm_jax.errors import UsageError

Batches = Iterable[dict[str, np.ndarray]]
BATCHING = ('windows', 'packed', 'streams')
TOKENIZERS = ('char', 'word', 'sentencepiece', 'wordpiece', 'hf')


def _texts(source, text_field: str) -> Iterable[str]:
  return (sources.text_of(record, text_field) for record in sources.records(source))


def build_tokenizer(data: ml_collections.ConfigDict,
                    prepared: sources.Prepared) -> tokenizers.Tokenizer:
  """Char and word vocabularies come from the corpus; sentencepiece and WordPiece from a file,
  or sentencepiece (BPE, ``data.vocab_size`` pieces) is trained on the training split.

  The char alphabet is that of every split (nanoGPT's: the sorted characters of the whole
  file); the word vocabulary is the training split's, as PTB's standard 10k is.
  """
  kind = data.tokenizer
  if kind == 'char':
    return tokenizers.CharTokenizer.from_texts(
        itertools.chain.from_iterable(_texts(s, data.text_field)
                                      for s in prepared.splits.values()))
  if kind == 'word':
    return tokenizers.WordTokenizer.from_texts(
        _texts(prepared.splits['train'], data.text_field), data.vocab_size)
  if data.tokenizer_path:
    return tokenizers.from_file(data.tokenizer_path)
  if kind == 'sentencepiece':  # trained on the training split, saved with the run
    return _trained_sentencepiece(prepared, data.text_field, data.vocab_size or 8000)
  raise UsageError(f'data.tokenizer={kind!r} needs data.tokenizer_path (a vocab.txt, a '
                   'tokenizer.json or a checkpoint directory holding one)')


def _trained_sentencepiece(prepared: sources.Prepared, text_field: str,
                           vocab_size: int) -> tokenizers.SentencePieceTokenizer:
  """The BPE model trained on ``prepared``'s training split, kept beside that split.

  The prepared copy's name already hashes its files and settings; the model's file name adds
  the size, the field, sentencepiece's version and the trainer's settings. So the next run
  on the same corpus loads it (training takes 2.0-2.2 s on PTB's 42k lines, and grows with
  the corpus) and a change of any of them trains another.
  """
  import sentencepiece

  key = json.dumps([vocab_size, text_field, sentencepiece.__version__,
                    tokenizers.SENTENCEPIECE_TRAINING], sort_keys=True)
  path = os.path.join(prepared.path,
                      f'sentencepiece-{hashlib.sha256(key.encode()).hexdigest()[:16]}.model')
  if os.path.exists(path):
    with open(path, 'rb') as f:
      return tokenizers.SentencePieceTokenizer(f.read())
  tokenizer = tokenizers.SentencePieceTokenizer.train(
      _texts(prepared.splits['train'], text_field), vocab_size)
  fileio.write_atomic(path, tokenizer.proto)  # processes that train it at once write the same
  return tokenizer


@dataclasses.dataclass
class LMData:
  """What a language-model run consumes.

  ``train(state)`` opens the training iterator at a saved position (None: the start);
  ``estimate(step)`` is the quick validation pass logged every ``eval_every`` steps;
  ``full`` gives, per evaluation split, every target of that split exactly once;
  ``epoch_steps()`` counts the batches of one pass over train (``train.epochs``).
  """

  tokenizer: tokenizers.Tokenizer
  train: Callable[[dict[str, Any] | None], loader.Resumable]
  estimate: Callable[[int], Batches]
  full: dict[str, Callable[[], Batches]]
  clean_report: dict
  epoch_steps: Callable[[], int]


def lm_data(config: ml_collections.ConfigDict, tokenizer: tokenizers.Tokenizer | None = None,
            process_index: int = 0, process_count: int = 1) -> LMData:
  data, t, seed = config.data, config.train, config.seed
  prepared = sources.prepare(data)
  for split in ('train', 'validation'):
    if split not in prepared.splits:
      raise UsageError(f'{data.corpus} has no {split!r} split: give data.files.{split} or '
                       'set data.val_fraction')
  task = tasks.get(config.objective)
  if task.reads == 'sentence_pairs' or data.batching in ('windows', 'streams'):
    prepared = sources.in_memory(prepared)  # read whole (vocabulary, streams, sentences) once
  tokenizer = tokenizer or build_tokenizer(data, prepared)
  eval_splits = [s for s in ('validation', 'test') if s in prepared.splits]
  full_batch = t.full_eval_batch_size

  if task.reads == 'sentence_pairs':
    task.check_special(tokenizer.special)
    return _sentence_pairs(config, tokenizer, prepared, eval_splits, process_index,
                           process_count)
  if data.batching == 'streams':
    return _streams(config, tokenizer, prepared, eval_splits, process_index, process_count)
  if data.batching == 'windows':
    streams = {split: loader.token_stream(prepared.splits[split], tokenizer, data.text_field)
               for split in ['train'] + eval_splits}

    def train(state):
      return loader.Resumable(loader.windows(streams['train'], t.batch_size, t.seq_len, seed,
                                             process_index, process_count), state)

    def estimate(step):
      return (lm.random_windows(streams['validation'], t.batch_size, t.seq_len, seed,
                                step * t.eval_batches + i, lm.EVAL_STREAM)
              for i in range(t.eval_batches))

    full = {split: (lambda s=split: lm.sequential_windows(streams[s], full_batch, t.seq_len,
                                                          t.full_eval_stride))
            for split in eval_splits}

    def epoch_steps():
      return len(streams['train']) // (t.batch_size * t.seq_len)
  else:
    task.check_special(tokenizer.special)
    packing = task.packing(tokenizer.special, config)
    if task.reads == 'conversation':
      encode = sft.encoder(config.sft, tokenizer, data.text_field, prepared.label_names)
    elif task.reads == 'text2text':
      encode = seq2seq.encoder(config.seq2seq, tokenizer, data.text_field, prepared.label_names)
    else:
      def encode(record):
        return tokenizer.encode(sources.text_of(record, data.text_field))

    @functools.cache
    def documents(split):  # framed once per split and command (in memory when small)
      return loader.documents(prepared.splits[split], lambda r: packing.frame(encode(r)))

    def packed(split, batch_size, train):
      return loader.packed(documents(split), packing.lengths, packing.finish, batch_size, seed,
                           train=train, workers=data.workers,
                           process_index=process_index if train else 0,
                           process_count=process_count if train else 1, whole=packing.whole)

    def train(state):
      return loader.Resumable(packed('train', t.batch_size, True), state)

    def estimate(step):
      return itertools.islice(iter(packed('validation', t.batch_size, False)), t.eval_batches)

    full = {split: (lambda s=split: iter(packed(s, full_batch, False))) for split in eval_splits}

    def epoch_steps():  # the framed tokens of train over a batch's, as packing fills rows
      train_documents = documents('train')
      tokens = sum(len(next(iter(train_documents[i].values())))
                   for i in range(len(train_documents)))
      return tokens // (t.batch_size * t.seq_len)
  return LMData(tokenizer, train, estimate, full, prepared.report, epoch_steps)


def _streams(config, tokenizer, prepared, eval_splits, process_index, process_count) -> LMData:
  """Truncated BPTT (``lm.Streams``): training batches continue each stream where the last
  batch stopped; evaluation reads each split as one stream whose state is never reset,
  ``full_eval_batch_size * seq_len`` targets per call; the estimate is its first
  ``eval_batches`` calls."""
  data, t = config.data, config.train
  ids = {split: loader.token_stream(prepared.splits[split], tokenizer, data.text_field)
         for split in ['train'] + eval_splits}
  window = t.full_eval_batch_size * t.seq_len

  def train(state):
    return loader.Resumable(loader.streams(ids['train'], t.batch_size, t.seq_len, process_index,
                                           process_count), state)

  def estimate(step):
    del step  # the same opening of the validation stream every time
    return itertools.islice(lm.stream_windows(ids['validation'], window), t.eval_batches)

  full = {split: (lambda s=split: lm.stream_windows(ids[s], window)) for split in eval_splits}
  return LMData(tokenizer, train, estimate, full, prepared.report,
                lambda: lm.Streams(ids['train'], t.batch_size, t.seq_len).epoch_steps)


def _sentence_pairs(config, tokenizer, prepared, eval_splits, process_index, process_count
                    ) -> LMData:
  """Next-sentence pairs (data/nsp.py) of every split, for objective mlm_nsp."""
  data, t = config.data, config.train
  sentences = {split: nsp.Sentences(prepared.splits[split], tokenizer, data.text_field,
                                    one_stream=data.unit == 'line')
               for split in ['train'] + eval_splits}
  special, random_next = tokenizer.special, config.mlm.random_next

  def train(state):
    return loader.Resumable(nsp.train_batches(sentences['train'], t.batch_size, t.seq_len,
                                              special, random_next, config.seed, process_index,
                                              process_count), state)

  def whole(split, batch_size):
    return nsp.eval_batches(sentences[split], batch_size, t.seq_len, special, random_next)

  def estimate(step):
    del step  # the same fixed examples every time, as the other objectives' estimates
    return iter(whole('validation', t.batch_size)[:t.eval_batches])

  full = {split: (lambda s=split: iter(whole(s, t.full_eval_batch_size))) for split in eval_splits}

  def epoch_steps():
    raise UsageError('train.epochs has no meaning for objective mlm_nsp, whose pairs are drawn '
                     'at random without end; set train.steps')
  return LMData(tokenizer, train, estimate, full, prepared.report, epoch_steps)


def answer_examples(config: ml_collections.ConfigDict, tokenizer: tokenizers.Tokenizer,
                    split: str) -> list[tuple[np.ndarray, str]]:
  """An instruction-tuning or text-to-text split as (prompt ids, the answer it should get),
  for evaluation by generation (a seq2seq prompt is the encoder's input, EOS closed)."""
  prepared = sources.prepare(config.data)
  if split not in prepared.splits:
    raise UsageError(f'{config.data.corpus} has no {split!r} split')
  source = prepared.splits[split]
  records = [source[i] for i in range(len(source))]
  if tasks.get(config.objective).reads == 'text2text':
    pairs = [seq2seq.texts(config.seq2seq, config.data.text_field, prepared.label_names)(r)
             for r in records]
    inputs = seq2seq.inputs(tokenizer, [i for i, _ in pairs], config.train.seq_len)
    return list(zip(inputs, [t for _, t in pairs]))
  answer = sft.encoder(config.sft, tokenizer, config.data.text_field, prepared.label_names,
                       for_answers=True)
  return [answer(r) for r in records]


@dataclasses.dataclass
class LabelledData:
  """What a classification run consumes: the LMData interface (train iterator, quick and
  whole-split evaluations) plus the label names."""

  tokenizer: tokenizers.Tokenizer
  train: Callable[[dict[str, Any] | None], loader.Resumable]
  estimate: Callable[[int], Batches]
  full: dict[str, Callable[[], Batches]]
  clean_report: dict
  label_names: tuple[str, ...]
  epoch_steps: Callable[[], int]


def labelled_data(config: ml_collections.ConfigDict, tokenizer: tokenizers.Tokenizer | None = None,
                  process_index: int = 0, process_count: int = 1) -> LabelledData:
  data, t, seed = config.data, config.train, config.seed
  prepared = sources.in_memory(sources.prepare(data))  # read once: the vocabulary, the ids
  tokenizer = tokenizer or build_tokenizer(data, prepared)
  encoded = {}
  for split, records in prepared.splits.items():
    examples = tokenizer.encode_batch([sources.text_of(r, data.text_field) for r in records])
    if data.text_pair_field:
      examples = list(zip(examples, tokenizer.encode_batch(
          [sources.text_of(r, 'text_pair') for r in records])))
    encoded[split] = examples, np.array([r['label'] for r in records])
  if data.cv_folds:
    encoded.update(cv_split(*encoded['train'], data.cv_folds, data.cv_fold))
  if data.train_examples:
    encoded['train'] = subset(*encoded['train'], data.train_examples)
  if 'validation' not in encoded:
    raise UsageError(f'{data.corpus} has no validation split: set data.val_fraction or '
                     'data.files.validation')

  def batches(split, train, batch_size):
    tokens, labels = encoded[split]
    return loader.classification(tokens, labels, batch_size, t.seq_len, tokenizer.special, seed,
                                 train=train, process_index=process_index if train else 0,
                                 process_count=process_count if train else 1,
                                 pair_style=pair_style(config.model))

  def train(state):
    return loader.Resumable(batches('train', True, t.batch_size), state)

  def estimate(step):
    return itertools.islice(iter(batches('validation', False, t.batch_size)), t.eval_batches)

  full = {split: (lambda s=split: iter(batches(s, False, t.full_eval_batch_size)))
          for split in ('validation', 'test') if split in encoded}
  return LabelledData(tokenizer, train, estimate, full, prepared.report, prepared.label_names,
                      lambda: len(encoded['train'][1]) // t.batch_size)


def feature_data(config: ml_collections.ConfigDict, process_index: int = 0,
                 process_count: int = 1) -> LabelledData:
  """Numeric inputs (``data.format='idx'``, data/features.py) as a classification run's data;
  the label names are the corpus's (``data.labels``) or the label ids."""
  spec, t = sources.resolve(config.data), config.train
  arrays = features.splits(spec)
  if 'validation' not in arrays:
    raise UsageError(f'{spec.name} has no validation split: set data.val_fraction or '
                     'data.files.validation')
  width = arrays['train'][0].shape[1]
  for split, (x, _) in arrays.items():
    if x.shape[1] != width:
      raise UsageError(f'the {split} split has {x.shape[1]} features per example, train has '
                       f'{width}; the files must have one shape')
  classes = int(max(y.max() for _, y in arrays.values())) + 1
  names = tuple(spec.labels) or tuple(str(i) for i in range(classes))
  if len(names) < classes:
    raise UsageError(f'data.labels names {len(names)} classes but the labels reach id '
                     f'{classes - 1}; name every class or leave data.labels empty')

  def batches(split, train, batch_size):
    return features.batches(*arrays[split], batch_size, config.seed, train=train,
                            process_index=process_index if train else 0,
                            process_count=process_count if train else 1)

  def estimate(step):
    return itertools.islice(iter(batches('validation', False, t.batch_size)), t.eval_batches)

  full = {split: (lambda s=split: iter(batches(s, False, t.full_eval_batch_size)))
          for split in ('validation', 'test') if split in arrays}
  return LabelledData(tokenizers.FeatureInputs(width),
                      lambda state: loader.Resumable(batches('train', True, t.batch_size), state),
                      estimate, full, {}, names, lambda: len(arrays['train'][1]) // t.batch_size)


def reads_features(data: ml_collections.ConfigDict) -> bool:
  """Whether the data section names numeric arrays (an MLP's inputs) rather than text."""
  return sources.NAMED.get(data.corpus, {}).get('format', data.format) == 'idx'


def pair_style(model: ml_collections.ConfigDict) -> str:
  """BERT's pair layout where the model embeds two token types, else RoBERTa's."""
  return 'bert' if model.type_vocab_size >= 2 else 'roberta'


def cv_split(tokens: list, labels: np.ndarray, folds: int, fold: int) -> dict[str, tuple]:
  """Training examples cut into ``folds`` stratified folds; ``fold`` validates, the rest train.

  Each class's examples are shuffled (a fixed permutation, the same for every run, so that
  models compare fold by fold) and dealt to the folds in turn, so every fold has the class
  balance of the whole. The corpus's own validation split, if any, is left out.
  """
  rng = np.random.default_rng(0)
  groups = labels if labels.dtype.kind in 'iub' else np.zeros(len(labels))  # regression: one
  assigned, dealt = np.empty(len(labels), np.int64), 0
  for group in np.unique(groups):
    members = rng.permutation(np.flatnonzero(groups == group))
    assigned[members] = (dealt + np.arange(len(members))) % folds
    dealt += len(members)

  def take(keep):
    return [tokens[i] for i in np.flatnonzero(keep)], labels[keep]
  return {'train': take(assigned != fold), 'validation': take(assigned == fold)}


def subset(tokens: list, labels: np.ndarray, count: int) -> tuple[list, np.ndarray]:
  """``count`` training examples drawn by a fixed permutation: the same subset for every
  model, and a larger count holds every smaller one (a learning curve nests)."""
  if count > len(labels):
    raise UsageError(f'data.train_examples={count} exceeds the {len(labels)} training examples')
  keep = np.sort(np.random.default_rng(0).permutation(len(labels))[:count])
  return [tokens[i] for i in keep], labels[keep]


def check(config: ml_collections.ConfigDict) -> list[str]:
  """Problems with the data section that need no file to see."""
  data = config.data
  problems = []
  if data.batching not in BATCHING:
    problems.append(f'data.batching={data.batching!r} is not one of {BATCHING}')
  if data.tokenizer not in TOKENIZERS:
    problems.append(f'data.tokenizer={data.tokenizer!r} is not one of {TOKENIZERS}')
  if data.format not in sources.FORMATS:
    problems.append(f'data.format={data.format!r} is not one of {sources.FORMATS}')
  if data.unit not in sources.UNITS:
    problems.append(f'data.unit={data.unit!r} is not one of {sources.UNITS}')
  if not 0.0 <= data.val_fraction < 1.0:
    problems.append(f'data.val_fraction must be in [0, 1), got {data.val_fraction}')
  if data.tokenizer_path and not os.path.exists(data.tokenizer_path):
    problems.append(f'data.tokenizer_path {data.tokenizer_path} does not exist')
  stride = config.train.full_eval_stride
  if stride and not (data.batching == 'windows' and 0 < stride <= config.train.seq_len):
    problems.append(f'train.full_eval_stride={stride} slides the evaluation windows of '
                    f'data.batching="windows" and must be in [1, train.seq_len='
                    f'{config.train.seq_len}]; 0: disjoint windows')
  if data.train_examples < 0:
    problems.append(f'data.train_examples={data.train_examples} must be >= 0 (0: all)')
  if data.cv_folds and (data.cv_folds < 2 or not 0 <= data.cv_fold < data.cv_folds):
    problems.append(f'data.cv_folds={data.cv_folds}, data.cv_fold={data.cv_fold}: '
                    'cross-validation needs at least 2 folds and 0 <= cv_fold < cv_folds')
  task = tasks.get(config.objective)
  if reads_features(data) != (config.model.kind == 'mlp'):
    problems.append(f'model.kind={config.model.kind!r} on data.corpus={data.corpus!r}: numeric '
                    'inputs (data.format="idx") train model.kind="mlp", and an MLP reads only '
                    'those; change one of them')
  if reads_features(data) and not task.labelled:
    problems.append(f'objective={config.objective!r} on numeric inputs: they train '
                    'objective="classification"')
  if task.reads == 'conversation':
    problems += sft.errors(config)
  if task.reads == 'text2text':
    problems += seq2seq.errors(config)
  if data.text_pair_field and not (task.labelled or task.reads == 'text2text'):
    problems.append(f'data.text_pair_field={data.text_pair_field!r} reads sentence pairs of '
                    'labelled data: objective "classification" or "seq2seq"')
  if data.label_text and task.reads != 'text2text':
    problems.append('data.label_text=true keeps labels as texts, which only objective='
                    '"seq2seq" reads (as targets)')
  if tasks.get(config.objective).labelled:
    named = sources.NAMED.get(data.corpus, {})
    if named.get('format', data.format) == 'text' and not data.corpus.startswith('tfds:'):
      problems.append(f'objective={config.objective!r} needs labelled data: data.format tsv, '
                      'csv or jsonl, or a labelled named corpus (sst2, sentiment)')
  return problems


def load(config: ml_collections.ConfigDict, tokenizer: tokenizers.Tokenizer | None = None
         ) -> LMData | LabelledData:
  """The run's data for this process; ``tokenizer`` (a workdir's saved one, so that a resumed
  run or an evaluation encodes as training did) is built from the corpus when None.

  With several processes, process 0 prepares the dataset while the others wait, so that no
  two write the same cache.
  """
  if reads_features(config.data):  # read from the files by every process; nothing is cached
    return feature_data(config, jax.process_index(), jax.process_count())
  if jax.process_count() > 1:
    if jax.process_index() == 0:
      sources.prepare(config.data)
    multihost_utils.sync_global_devices('llm_jax: data prepared')
  build = labelled_data if tasks.get(config.objective).labelled else lm_data
  return build(config, tokenizer, jax.process_index(), jax.process_count())
