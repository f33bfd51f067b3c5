"""Text-to-text examples for encoder-decoders: a record as (input ids, target ids).

A record is labelled data: its text (and ``text_pair``) formatted by ``seq2seq.input`` (T5's
task prefixes, ``"sst2 sentence: {text}"``) is the input; its target is the label's word
(``seq2seq.targets``, default the label names) for class labels, or the label itself when
``data.label_text`` keeps labels as free text (summaries, translations, answers in a
``target`` column). EOS closes both sides, as T5's preprocessors append it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import ml_collections
import numpy as np

from llm_jax.data import sources, tokenizers
from llm_jax.errors import UsageError


def texts(s2s: ml_collections.ConfigDict, text_field: str, label_names: tuple[str, ...]
          ) -> Callable[[Mapping], tuple[str, str]]:
  """record -> (input text, target text)."""
  words = tuple(s2s.targets) or label_names

  def of(record):
    pair = sources.text_of(record, 'text_pair') if 'text_pair' in record else ''
    source = s2s.input.format(text=sources.text_of(record, text_field), text_pair=pair)
    label = record['label']
    if isinstance(label, (str, bytes)):
      return source, label.decode('utf-8') if isinstance(label, bytes) else label
    if int(label) >= len(words):
      raise UsageError(f'label {int(label)} has no target word: seq2seq.targets holds '
                       f'{len(words)}')
    return source, words[int(label)]
  return of


def encoder(s2s: ml_collections.ConfigDict, tokenizer: tokenizers.Tokenizer, text_field: str,
            label_names: tuple[str, ...]) -> Callable[[Mapping], tuple[np.ndarray, np.ndarray]]:
  """record -> (input ids, target ids), neither with EOS yet (the task frames them)."""
  of = texts(s2s, text_field, label_names)

  def encode(record):
    source, target = of(record)
    return tokenizer.encode(source), tokenizer.encode(target)
  return encode


def inputs(tokenizer: tokenizers.Tokenizer, texts: Sequence[str],
           max_len: int = 0) -> list[np.ndarray]:
  """Encoder inputs as a seq2seq run trains on them: each text's ids (the first ``max_len`` -
  1, if given) and EOS, for generation."""
  eos = tokenizer.special['eos']
  return [np.append(ids[:max_len - 1] if max_len else ids, eos).astype(np.int32)
          for ids in tokenizer.encode_batch(list(texts))]


def errors(config: ml_collections.ConfigDict) -> list[str]:
  s2s, data = config.seq2seq, config.data
  out = []
  if '{text}' not in s2s.input:
    out.append(f'seq2seq.input={s2s.input!r} must hold {{text}}, where the example goes')
  if '{text_pair}' in s2s.input and not data.text_pair_field:
    out.append('seq2seq.input holds {text_pair}: set data.text_pair_field to its column')
  if s2s.target_len < 2:
    out.append(f'seq2seq.target_len={s2s.target_len} leaves no room for a target beside EOS')
  if data.cross_document:
    out.append('data.cross_document=true would let packed examples attend to each other')
  formats = sources.NAMED.get(data.corpus, {}).get('format', data.format)
  if formats in ('text', 'chat') and not data.corpus.startswith('tfds:'):
    out.append('objective="seq2seq" reads labelled examples (data.format tsv, csv or jsonl, '
               'or sst2, sentiment): the text is the input, the label (or its word in '
               'seq2seq.targets, or itself with data.label_text=true) the target')
  return out
