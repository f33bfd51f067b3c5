"""An imported checkpoint's own tokenizer, run by Hugging Face's ``tokenizers`` library.

Minimal on purpose: it returns the ``tokenizers.Tokenizer`` itself (whose ``encode`` adds the
checkpoint's special tokens, e.g. ``[CLS] ... [SEP]``) so that imported models tokenize
exactly as upstream. The tokenizer interface of ``llm_jax.data`` is where it belongs long-term.
"""

from __future__ import annotations

import json
import os

from tokenizers import Tokenizer
from tokenizers.implementations import BertWordPieceTokenizer

from llm_jax.convert.family import ConversionError


def load_tokenizer(directory: str) -> Tokenizer:
  """From ``tokenizer.json``, else a WordPiece ``vocab.txt`` (lowercasing as its
  ``tokenizer_config.json`` says, BERT's default otherwise)."""
  path = os.path.join(directory, 'tokenizer.json')
  if os.path.isfile(path):
    return Tokenizer.from_file(path)
  vocab = os.path.join(directory, 'vocab.txt')
  if not os.path.isfile(vocab):
    raise ConversionError(f'{directory} holds neither tokenizer.json nor vocab.txt')
  lowercase = True
  config = os.path.join(directory, 'tokenizer_config.json')
  if os.path.isfile(config):
    with open(config) as f:
      lowercase = json.load(f).get('do_lower_case', True)
  return BertWordPieceTokenizer(vocab, lowercase=lowercase)._tokenizer
