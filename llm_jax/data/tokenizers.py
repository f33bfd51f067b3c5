"""Tokenizers behind one interface: encode, decode, batch encode, special tokens, save, load.

``encode`` never adds special tokens: the batching step that knows the task adds them
([CLS] text [SEP] for a classifier, EOS between packed documents), so a tokenizer means the
same thing to every model. ``encode_with_specials`` reads text that spells special tokens
out (a rendered chat template) and gives each its id. Each tokenizer saves into a directory
(``spec.json`` + its own files), which every workdir holds as ``tokenizer/``.

A Hugging Face ``tokenizer.json`` (byte-level BPE, SentencePiece-BPE, WordPiece) is run by the
``tokenizers`` library, as ``transformers`` runs it, with the special tokens and the chat
template of the ``tokenizer_config.json`` / ``special_tokens_map.json`` beside it.
"""

from __future__ import annotations

import collections
import io
import json
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np

from llm_jax import fileio
from llm_jax.errors import UsageError

SPEC = 'spec.json'  # what a saved tokenizer directory is recognised by

SPECIALS = ('pad', 'unk', 'bos', 'eos', 'cls', 'sep', 'mask')


class Tokenizer(Protocol):
  """What every tokenizer offers; ``special`` maps the SPECIALS it has to their ids."""

  kind: str
  special: dict[str, int]
  chat_template: str  # a Jinja chat template ('' when it has none)

  @property
  def vocab_size(self) -> int: ...

  def encode(self, text: str) -> np.ndarray: ...

  def encode_with_specials(self, text: str) -> np.ndarray: ...

  def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]: ...

  def decode(self, ids: Sequence[int]) -> str: ...

  def save(self, directory: str) -> None: ...


class _Base:
  kind = ''
  chat_template = ''

  def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
    return [self.encode(t) for t in texts]

  def special_strings(self) -> dict[str, int]:
    """How special tokens are spelled in text, for ``encode_with_specials``."""
    return {}

  def encode_with_specials(self, text: str) -> np.ndarray:
    """``encode``, except that each special token's spelling becomes its id."""
    strings = self.special_strings()
    if not strings:
      return self.encode(text)
    pattern = '|'.join(re.escape(s) for s in sorted(strings, key=len, reverse=True))
    pieces, at = [], 0
    for match in re.finditer(pattern, text):
      pieces += [self.encode(text[at:match.start()]), np.array([strings[match.group()]])]
      at = match.end()
    pieces.append(self.encode(text[at:]))
    return np.concatenate(pieces).astype(np.int32)

  def _write_spec(self, directory: str, **fields) -> None:
    fileio.write_atomic(os.path.join(directory, SPEC),
                        json.dumps({'kind': self.kind, **fields}, indent=1))


class CharTokenizer(_Base):
  """One id per character of a fixed alphabet, as nanoGPT's ``shakespeare_char``."""

  kind = 'char'

  def __init__(self, chars: Sequence[str]):
    self.chars = list(chars)
    self._ids = {c: i for i, c in enumerate(self.chars)}
    self.special = {}

  @classmethod
  def from_texts(cls, texts: Iterable[str]) -> CharTokenizer:
    """The sorted set of the texts' characters, the vocabulary nanoGPT builds."""
    chars = set()
    for text in texts:
      chars.update(text)
    return cls(sorted(chars))

  @property
  def vocab_size(self) -> int:
    return len(self.chars)

  def encode(self, text: str) -> np.ndarray:
    try:
      return np.fromiter((self._ids[c] for c in text), dtype=np.int32, count=len(text))
    except KeyError as e:
      char = e.args[0]
      raise UsageError(f'character {char!r} (at position {text.index(char)} of the text) is '
                       f'not in the tokenizer\'s {self.vocab_size}-character vocabulary, which '
                       'is the training text\'s; remove or replace it') from None

  def decode(self, ids: Sequence[int]) -> str:
    return ''.join(self.chars[int(i)] for i in ids)

  def save(self, directory: str) -> None:
    self._write_spec(directory, chars=self.chars)


class WordTokenizer(_Base):
  """Whitespace-separated words over a closed vocabulary (Penn Treebank's 10k words).

  Words outside the vocabulary map to ``<unk>``; ``<eos>`` ends each document (for PTB, a
  line) so that perplexity counts it, as the literature does.
  """

  kind = 'word'

  def __init__(self, words: Sequence[str]):
    self.words = list(words)
    self._ids = {w: i for i, w in enumerate(self.words)}
    self.special = {name: self._ids[tok] for name, tok in
                    (('pad', '<pad>'), ('unk', '<unk>'), ('eos', '<eos>')) if tok in self._ids}

  @classmethod
  def from_texts(cls, texts: Iterable[str], max_size: int = 0) -> WordTokenizer:
    """Words by descending frequency (ties alphabetical) after ``<pad> <unk> <eos>``."""
    counts = collections.Counter(w for text in texts for w in text.split())
    reserved = ['<pad>', '<unk>', '<eos>']
    ranked = sorted((w for w in counts if w not in reserved), key=lambda w: (-counts[w], w))
    if max_size:
      ranked = ranked[:max_size - len(reserved)]
    return cls(reserved + ranked)

  @property
  def vocab_size(self) -> int:
    return len(self.words)

  def encode(self, text: str) -> np.ndarray:
    unk = self.special['unk']
    return np.array([self._ids.get(w, unk) for w in text.split()], np.int32)

  def decode(self, ids: Sequence[int]) -> str:
    return ' '.join(self.words[int(i)] for i in ids)

  def save(self, directory: str) -> None:
    self._write_spec(directory, words=self.words)


# What sentencepiece's trainer is told besides the size and the model type: lossless, with
# the special pieces the tasks read. A model trained for a corpus is kept under a hash of
# these (data.pipeline), so changing one trains it again.
SENTENCEPIECE_TRAINING = dict(
    byte_fallback=True, normalization_rule_name='identity', remove_extra_whitespaces=False,
    add_dummy_prefix=False, split_digits=True, allow_whitespace_only_pieces=True,
    character_coverage=1.0, max_sentence_length=1 << 20, pad_id=0, unk_id=1, bos_id=2, eos_id=3,
    user_defined_symbols=['[CLS]', '[SEP]', '[MASK]'])


class SentencePieceTokenizer(_Base):
  """A sentencepiece BPE or unigram model, trained lossless (identity normalization, byte
  fallback, whitespace kept) so that ``decode(encode(x)) == x`` for any text."""

  kind = 'sentencepiece'

  def __init__(self, model_proto: bytes):
    import sentencepiece as spm
    self.proto = model_proto
    self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
    self.special = {name: i for name, i in (('pad', self.sp.pad_id()), ('unk', self.sp.unk_id()),
                                            ('bos', self.sp.bos_id()), ('eos', self.sp.eos_id()))
                    if i >= 0}
    for name, piece in (('cls', '[CLS]'), ('sep', '[SEP]'), ('mask', '[MASK]')):
      if self.sp.piece_to_id(piece) != self.sp.unk_id():
        self.special[name] = self.sp.piece_to_id(piece)

  @classmethod
  def train(cls, texts: Iterable[str], vocab_size: int,
            model_type: str = 'bpe') -> SentencePieceTokenizer:
    import sentencepiece as spm
    if model_type not in ('bpe', 'unigram'):
      raise UsageError(f'--model-type must be bpe or unigram, got {model_type!r}')
    model = io.BytesIO()
    try:
      spm.SentencePieceTrainer.train(
          sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size,
          model_type=model_type, minloglevel=2, num_threads=os.cpu_count(),
          **SENTENCEPIECE_TRAINING)
    except RuntimeError as e:  # e.g. a vocabulary larger than the corpus can fill
      raise UsageError(f'sentencepiece: {str(e).split("] ")[-1]}') from None
    return cls(model.getvalue())

  @property
  def vocab_size(self) -> int:
    return self.sp.get_piece_size()

  def encode(self, text: str) -> np.ndarray:
    return np.array(self.sp.encode(text), np.int32)

  def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
    return [np.array(ids, np.int32) for ids in self.sp.encode(list(texts))]

  def decode(self, ids: Sequence[int]) -> str:
    return self.sp.decode([int(i) for i in ids])

  def special_strings(self) -> dict[str, int]:
    return {self.sp.id_to_piece(i): i for i in self.special.values()}

  def save(self, directory: str) -> None:
    fileio.write_atomic(os.path.join(directory, 'tokenizer.model'), self.proto)
    self._write_spec(directory)


class WordPieceTokenizer(_Base):
  """BERT's WordPiece from a ``vocab.txt``, run by the ``tokenizers`` library so that imported
  checkpoints tokenize exactly as upstream."""

  kind = 'wordpiece'

  def __init__(self, path: str, lowercase: bool = True):
    from tokenizers.implementations import BertWordPieceTokenizer
    if not os.path.isfile(path):
      raise UsageError(f'no WordPiece vocabulary at {path}: give a vocab.txt or tokenizer.json')
    self.path, self.lowercase = path, lowercase
    self.hf = BertWordPieceTokenizer(path, lowercase=lowercase)._tokenizer
    self.special = _bracketed(self.hf.get_vocab())

  @property
  def vocab_size(self) -> int:
    return self.hf.get_vocab_size()

  def encode(self, text: str) -> np.ndarray:
    return np.array(self.hf.encode(text, add_special_tokens=False).ids, np.int32)

  def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
    encodings = self.hf.encode_batch(list(texts), add_special_tokens=False)
    return [np.array(e.ids, np.int32) for e in encodings]

  def decode(self, ids: Sequence[int]) -> str:
    return self.hf.decode([int(i) for i in ids])

  def save(self, directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    _copy(self.path, os.path.join(directory, 'vocab.txt'))
    self._write_spec(directory, file='vocab.txt', lowercase=self.lowercase)


class FeatureInputs(_Base):
  """The stand-in of a run whose inputs are numeric vectors, not text (``data.format='idx'``,
  an MLP): its "vocabulary" is the input width, which sizes the model's first layer."""

  kind = 'features'

  def __init__(self, width: int):
    self.width = int(width)
    self.special = {}

  @property
  def vocab_size(self) -> int:
    return self.width

  def encode(self, text: str) -> np.ndarray:
    raise UsageError(f'this run reads {self.width}-wide feature vectors, not text: evaluate it '
                     'on its data (llm-jax eval), it has no text to tokenize')

  def decode(self, ids: Sequence[int]) -> str:
    raise UsageError('a feature-vector run has no tokens to decode')

  def save(self, directory: str) -> None:
    self._write_spec(directory, width=self.width)


def _bracketed(vocab: dict[str, int]) -> dict[str, int]:
  """BERT's special tokens by their usual spellings."""
  return {name: vocab[tok] for name, tok in
          (('pad', '[PAD]'), ('unk', '[UNK]'), ('cls', '[CLS]'), ('sep', '[SEP]'),
           ('mask', '[MASK]')) if tok in vocab}


# Hugging Face's tokenizer files, as transformers reads them
HF_FILES = ('tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json',
            'chat_template.jinja')


class HFTokenizer(_Base):
  """A Hugging Face ``tokenizer.json`` with the special tokens and the chat template that
  ``tokenizer_config.json`` (and ``special_tokens_map.json``, ``chat_template.jinja``) beside
  it name. Without those files, BERT's bracketed names are looked up."""

  kind = 'hf'

  def __init__(self, directory: str):
    from tokenizers import Tokenizer as Backend
    self.directory = directory
    path = os.path.join(directory, 'tokenizer.json')
    if not os.path.isfile(path):
      raise UsageError(f'{directory} holds no tokenizer.json')
    self.hf = Backend.from_file(path)
    self.hf.no_padding()
    self.hf.no_truncation()
    settings = {}
    for name in ('special_tokens_map.json', 'tokenizer_config.json'):  # the latter wins
      settings.update(_read_json(os.path.join(directory, name)))
    self.special = _bracketed(self.hf.get_vocab())
    for name in SPECIALS:
      token = settings.get(f'{name}_token')
      content = token.get('content') if isinstance(token, dict) else token
      if content is not None and self.hf.token_to_id(content) is not None:
        self.special[name] = self.hf.token_to_id(content)
    template = settings.get('chat_template') or ''
    if isinstance(template, list):  # named templates: the default one
      template = {t['name']: t['template'] for t in template}.get('default', '')
    jinja = os.path.join(directory, 'chat_template.jinja')
    if not template and os.path.isfile(jinja):
      with open(jinja, encoding='utf-8') as f:
        template = f.read()
    self.chat_template = template

  @property
  def vocab_size(self) -> int:
    return self.hf.get_vocab_size()

  def encode(self, text: str) -> np.ndarray:
    return np.array(self.hf.encode(text, add_special_tokens=False).ids, np.int32)

  def encode_with_specials(self, text: str) -> np.ndarray:
    return self.encode(text)  # the library matches added tokens' spellings itself

  def special_strings(self) -> dict[str, int]:
    return {self.hf.id_to_token(i): i for i in self.special.values()}

  def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
    encodings = self.hf.encode_batch(list(texts), add_special_tokens=False)
    return [np.array(e.ids, np.int32) for e in encodings]

  def decode(self, ids: Sequence[int]) -> str:
    return self.hf.decode([int(i) for i in ids], skip_special_tokens=False)

  def save(self, directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    for name in HF_FILES:
      if os.path.isfile(os.path.join(self.directory, name)):
        _copy(os.path.join(self.directory, name), os.path.join(directory, name))
    self._write_spec(directory)


def _copy(source: str, target: str) -> None:
  """Copies a tokenizer file, unless it is already there: a resumed run saves the tokenizer
  it loaded from its own workdir (copying a file onto itself raises)."""
  if os.path.exists(target) and os.path.samefile(source, target):
    return
  shutil.copyfile(source, target)


def _read_json(path: str) -> dict:
  if not os.path.isfile(path):
    return {}
  with open(path, encoding='utf-8') as f:
    try:
      return json.load(f)
    except json.JSONDecodeError as e:
      raise UsageError(f'{path}:{e.lineno}: not valid JSON ({e.msg})') from None


def load(directory: str) -> Tokenizer:
  """Loads a tokenizer saved by ``save`` (every workdir holds one in ``tokenizer/``)."""
  spec_path = os.path.join(directory, SPEC)
  if not os.path.exists(spec_path):
    raise FileNotFoundError(f'no tokenizer in {directory}: is this a workdir of llm-jax train?')
  with open(spec_path) as f:
    spec = json.load(f)
  kind = spec.get('kind')
  if kind == 'char':
    return CharTokenizer(spec['chars'])
  if kind == 'word':
    return WordTokenizer(spec['words'])
  if kind == 'sentencepiece':
    with open(os.path.join(directory, 'tokenizer.model'), 'rb') as f:
      return SentencePieceTokenizer(f.read())
  if kind == 'wordpiece' and spec['file'].endswith('.json'):  # saved before kind 'hf'
    return HFTokenizer(directory)
  if kind == 'wordpiece':
    return WordPieceTokenizer(os.path.join(directory, spec['file']), spec['lowercase'])
  if kind == 'hf':
    return HFTokenizer(directory)
  if kind == 'features':
    return FeatureInputs(spec['width'])
  raise UsageError(f'{spec_path}: unknown tokenizer kind {kind!r}')


def from_file(path: str) -> Tokenizer:
  """A tokenizer from a file a user points at: a sentencepiece ``.model``, a WordPiece
  ``vocab.txt``, a Hugging Face ``tokenizer.json`` (its config files read from beside it), a
  directory holding one (a checkpoint's), or a directory written by ``save``."""
  if os.path.isdir(path):
    if not os.path.exists(os.path.join(path, SPEC)) and \
        os.path.isfile(os.path.join(path, 'tokenizer.json')):
      return HFTokenizer(path)
    return load(path)
  if not os.path.isfile(path):
    raise UsageError(f'tokenizer file {path} does not exist')
  if path.endswith('.model'):
    with open(path, 'rb') as f:
      return SentencePieceTokenizer(f.read())
  if os.path.basename(path) == 'tokenizer.json':
    return HFTokenizer(os.path.dirname(path) or '.')
  if path.endswith('.txt'):
    return WordPieceTokenizer(path)
  raise UsageError(f'{path}: expected a sentencepiece .model, a vocab.txt, a tokenizer.json or '
                   'a directory holding one')
