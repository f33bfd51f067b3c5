"""Tokenizers behind one small interface: encode, decode, vocab size, save and load."""

from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np

from llm_jax import fileio
from llm_jax.errors import UsageError


class CharTokenizer:
  """One id per character of a fixed alphabet, as nanoGPT's ``shakespeare_char``."""

  kind = 'char'

  def __init__(self, chars: Sequence[str]):
    self.chars = list(chars)
    self._ids = {c: i for i, c in enumerate(self.chars)}

  @classmethod
  def from_text(cls, text: str) -> 'CharTokenizer':
    """The sorted set of the text's characters, the vocabulary nanoGPT builds."""
    return cls(sorted(set(text)))

  @property
  def vocab_size(self) -> int:
    return len(self.chars)

  def encode(self, text: str) -> np.ndarray:
    try:
      return np.fromiter((self._ids[c] for c in text), dtype=np.int32, count=len(text))
    except KeyError as e:
      raise UsageError(f'character {e.args[0]!r} is not in the tokenizer\'s '
                       f'{self.vocab_size}-character vocabulary') from None

  def decode(self, ids: Sequence[int]) -> str:
    return ''.join(self.chars[int(i)] for i in ids)

  def save(self, path: str) -> None:
    fileio.write_atomic(path, json.dumps({'kind': self.kind, 'chars': self.chars}))


def load(path: str) -> CharTokenizer:
  """Loads a tokenizer saved by ``save`` (as every workdir holds one, ``tokenizer.json``)."""
  if not os.path.exists(path):
    raise FileNotFoundError(f'no tokenizer at {path}: is this a workdir written by llm-jax train?')
  with open(path) as f:
    spec = json.load(f)
  if spec.get('kind') == 'char':
    return CharTokenizer(spec['chars'])
  raise UsageError(f'{path}: unknown tokenizer kind {spec.get("kind")!r}')
