"""BERT's sentence-pair pretraining examples: two segments of text, the second either the one
that follows the first or, with probability ``mlm.random_next``, a random one from elsewhere.

A record is a document and its lines are its sentences, as in BERT's pretraining files. With
``data.unit='line'`` every record is one sentence and the split is one stream of them (Penn
Treebank's lines are consecutive Wall Street Journal sentences with no article boundaries),
so a random segment is drawn at least ``FAR`` sentences away instead of from another document.

An example starts at a sentence and gathers the sentences after it, within its document,
until they fill the row; a random cut leaves at least one on each side (BERT's
``create_instances_from_document``, without its short-sequence draws). The pair is laid out
and truncated as the tokenizer of a BERT would lay it out (``batching.frame_example``).
Training batch ``i`` is a pure function of ``(seed, i)``; an evaluation split is a fixed list
of examples, one per chunk of its sentences, drawn once with its own seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import grain
import numpy as np

from llm_jax.data import batching
from llm_jax.data.sources import text_of
from llm_jax.data.tokenizers import Tokenizer
from llm_jax.errors import UsageError

FAR = 100  # one stream of sentences: a random segment starts at least this far away
EVAL_SEED = 20190524  # the draws of the evaluation examples, apart from any run's seed


class Sentences:
  """A split's sentences as token ids, and the document each belongs to."""

  def __init__(self, source, tokenizer: Tokenizer, text_field: str, one_stream: bool):
    texts, documents = [], []
    for i in range(len(source)):
      lines = [line for line in text_of(source[i], text_field).split('\n') if line.strip()]
      texts += lines
      documents += [0 if one_stream else i] * len(lines)
    if len(texts) < 2:
      raise UsageError(f'next-sentence prediction needs at least two sentences in a split; '
                       f'this one has {len(texts)}')
    self.ids = tokenizer.encode_batch(texts)
    self.documents = np.asarray(documents)
    self.one_stream = one_stream

  def __len__(self) -> int:
    return len(self.ids)

  def far(self, i: int, j: int) -> bool:
    if self.one_stream:
      return abs(i - j) >= FAR or len(self) <= 2 * FAR
    return self.documents[i] != self.documents[j]

  def run(self, start: int, budget: int) -> list[int]:
    """Sentences from ``start`` on, in its document, until ``budget`` tokens are reached."""
    out, used = [], 0
    k = start
    while k < len(self) and self.documents[k] == self.documents[start] and used < budget:
      out.append(k)
      used += len(self.ids[k])
      k += 1
    return out


def example(sentences: Sentences, start: int, budget: int, random_next: float,
            rng: np.random.Generator) -> tuple[tuple[np.ndarray, np.ndarray], int]:
  """(segment A, segment B) and its label: 0 if B follows A, 1 if B is random."""
  chunk = sentences.run(start, budget)
  cut = int(rng.integers(1, len(chunk))) if len(chunk) > 1 else 1
  first = np.concatenate([sentences.ids[k] for k in chunk[:cut]])
  is_random = len(chunk) == 1 or rng.random() < random_next
  if is_random:
    other = int(rng.integers(len(sentences)))
    for _ in range(10):  # almost always the first draw
      if sentences.far(start, other):
        break
      other = int(rng.integers(len(sentences)))
    rest = sentences.run(other, max(budget - len(first), 1))
  else:
    rest = chunk[cut:]
  second = np.concatenate([sentences.ids[k] for k in rest]).astype(np.int32)
  return (first.astype(np.int32), second), int(is_random)


def _batch(pairs: Sequence, labels: Sequence[int], seq_len: int, special: dict[str, int],
           rows: int) -> dict[str, np.ndarray]:
  pad = rows - len(pairs)
  pairs = list(pairs) + [pairs[0]] * pad
  out = batching.pad_classification(pairs, seq_len, special.get('pad', 0), special['cls'],
                                    special['sep'], pair_style='bert')
  out['next_labels'] = np.pad(np.asarray(labels, np.int32), (0, pad))
  out['example_mask'] = np.pad(np.ones(rows - pad, np.float32), (0, pad))
  return out


def train_batches(sentences: Sentences, batch_size: int, seq_len: int, special: dict[str, int],
                  random_next: float, seed: int, process_index: int = 0,
                  process_count: int = 1) -> grain.MapDataset:
  """Batch ``i``: ``batch_size`` examples from starts drawn by ``(seed, i)``; each process
  builds its rows of it."""
  budget = seq_len - 3
  local = batch_size // process_count

  def make(index: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([seed, index])
    starts = rng.integers(len(sentences), size=batch_size)
    made = [example(sentences, int(s), budget, random_next, rng) for s in starts]
    mine = made[process_index * local:(process_index + 1) * local]
    return _batch([p for p, _ in mine], [y for _, y in mine], seq_len, special, local)

  return grain.MapDataset.range(1 << 40).map(make)


def eval_batches(sentences: Sentences, batch_size: int, seq_len: int, special: dict[str, int],
                 random_next: float) -> list[dict[str, np.ndarray]]:
  """The split's fixed examples: one starting at each chunk of its sentences in order, the
  last batch padded (``example_mask`` 0)."""
  budget = seq_len - 3
  rng = np.random.default_rng(EVAL_SEED)
  made, start = [], 0
  while start < len(sentences):
    made.append(example(sentences, start, budget, random_next, rng))
    start += len(sentences.run(start, budget))
  return [_batch([p for p, _ in made[i:i + batch_size]], [y for _, y in made[i:i + batch_size]],
                 seq_len, special, batch_size) for i in range(0, len(made), batch_size)]
