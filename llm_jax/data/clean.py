"""Cleaning, de-duplication and filtering: composable steps named in the config.

A config lists steps as strings, applied in order to records (dicts with a ``text``):

  nfc | nfkc | nfd | nfkd     Unicode normalization
  lower                       lower-casing
  regex:PATTERN=>REPLACEMENT  ``re.sub`` (e.g. ``regex:[^a-zA-Z\\s]=>`` keeps letters and spaces)
  whitespace                  runs of whitespace folded to one space, ends stripped
  dedup                       exact duplicates (by content hash) dropped, first kept
  near_dedup[:THRESHOLD]      near duplicates (MinHash over word 3-grams, Jaccard >= 0.8) dropped
  min_chars:N  max_chars:N  min_words:N  max_words:N    length filters
  min_alpha:R                 records whose non-space characters are < R letters dropped

Every run returns a report: per step, records in and out, and a few examples of what it
dropped or changed, so a filter that eats half a corpus is seen, not guessed.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zlib
from collections.abc import Callable, Sequence

import numpy as np

from llm_jax.errors import UsageError

Record = dict
EXAMPLES = 3


def _transform(fn: Callable[[str], str]):
  def step(records: list[Record]) -> tuple[list[Record], list[str]]:
    out, changed = [], []
    for r in records:
      text = fn(r['text'])
      if text != r['text'] and len(changed) < EXAMPLES:
        changed.append(f'{r["text"][:120]!r} -> {text[:120]!r}')
      if text:  # a record emptied by a transform has nothing left to learn from
        out.append({**r, 'text': text})
    return out, changed
  return step


def _filter(keep: Callable[[str], bool]):
  def step(records: list[Record]) -> tuple[list[Record], list[str]]:
    out = [r for r in records if keep(r['text'])]
    dropped = [r['text'][:200] for r in records if not keep(r['text'])][:EXAMPLES]
    return out, dropped
  return step


def _dedup(records: list[Record]) -> tuple[list[Record], list[str]]:
  seen, out, dropped = set(), [], []
  for r in records:
    digest = hashlib.sha1(r['text'].encode('utf-8')).digest()
    if digest in seen:
      if len(dropped) < EXAMPLES:
        dropped.append(r['text'][:200])
      continue
    seen.add(digest)
    out.append(r)
  return out, dropped


_PRIME = (1 << 31) - 1


def minhash_signatures(texts: Sequence[str], num_perm: int = 64, seed: int = 0) -> np.ndarray:
  """``[len(texts), num_perm]`` MinHash signatures of each text's word 3-gram set.

  Shingles are hashed with crc32 (stable across processes, unlike ``hash``) and permuted by
  ``(a x + b) mod p`` with p = 2^31 - 1, which stays inside uint64 arithmetic.
  """
  rng = np.random.default_rng(seed)
  a = rng.integers(1, _PRIME, num_perm, dtype=np.uint64)
  b = rng.integers(0, _PRIME, num_perm, dtype=np.uint64)
  signatures = np.full((len(texts), num_perm), _PRIME, np.uint64)
  for i, text in enumerate(texts):
    words = text.split()
    grams = {' '.join(words[j:j + 3]) for j in range(max(1, len(words) - 2))}
    hashes = np.array([zlib.crc32(g.encode('utf-8')) % _PRIME for g in grams], np.uint64)
    signatures[i] = ((hashes[:, None] * a + b) % _PRIME).min(axis=0)
  return signatures


def _near_dedup(threshold: float):
  def step(records: list[Record]) -> tuple[list[Record], list[str]]:
    signatures = minhash_signatures([r['text'] for r in records])
    bands, rows = 16, signatures.shape[1] // 16
    buckets: dict[tuple, list[int]] = {}
    kept, dropped = [], []
    for i, sig in enumerate(signatures):
      keys = [(band, sig[band * rows:(band + 1) * rows].tobytes()) for band in range(bands)]
      candidates = {j for key in keys for j in buckets.get(key, ())}
      if any(np.mean(signatures[j] == sig) >= threshold for j in candidates):
        if len(dropped) < EXAMPLES:
          dropped.append(records[i]['text'][:200])
        continue
      kept.append(records[i])
      for key in keys:
        buckets.setdefault(key, []).append(i)
    return kept, dropped
  return step


def _alpha_ratio(text: str) -> float:
  visible = [c for c in text if not c.isspace()]
  return sum(c.isalpha() for c in visible) / len(visible) if visible else 0.0


def _regex(argument: str):
  pattern, sep, replacement = argument.partition('=>')
  if not sep:
    raise UsageError(f'clean step regex:{argument} must look like regex:PATTERN=>REPLACEMENT')
  try:
    compiled = re.compile(pattern)
  except re.error as e:
    raise UsageError(f'clean step regex:{argument}: bad pattern ({e})') from None
  return _transform(lambda t: compiled.sub(replacement, t))


def _number(name: str, argument: str, kind=int):
  try:
    return kind(argument)
  except ValueError:
    raise UsageError(f'clean step {name} needs a number, got {argument!r}') from None


def make_step(spec: str):
  """The step a spec string names (see the module docstring)."""
  name, _, argument = spec.partition(':')
  if name in ('nfc', 'nfkc', 'nfd', 'nfkd'):
    return _transform(lambda t: unicodedata.normalize(name.upper(), t))
  if name == 'lower':
    return _transform(str.lower)
  if name == 'regex':
    return _regex(argument)
  if name == 'whitespace':
    return _transform(lambda t: ' '.join(t.split()))
  if name == 'dedup':
    return _dedup
  if name == 'near_dedup':
    return _near_dedup(_number(name, argument or '0.8', float))
  if name in ('min_chars', 'max_chars', 'min_words', 'max_words'):
    n = _number(name, argument)
    size = len if name.endswith('chars') else (lambda t: len(t.split()))
    return _filter((lambda t: size(t) >= n) if name.startswith('min') else
                   (lambda t: size(t) <= n))
  if name == 'min_alpha':
    ratio = _number(name, argument, float)
    return _filter(lambda t: _alpha_ratio(t) >= ratio)
  raise UsageError(f'unknown clean step {spec!r}; see llm_jax/data/clean.py for the steps')


def run(records: list[Record], specs: Sequence[str]) -> tuple[list[Record], list[dict]]:
  """Applies the steps in order; returns the kept records and the per-step report."""
  kept, report = run_splits({'all': records}, specs)
  for entry in report:
    del entry['dropped_by_split']
  return kept['all'], report


def run_splits(splits: dict[str, list[Record]], specs: Sequence[str]
               ) -> tuple[dict[str, list[Record]], list[dict]]:
  """Cleans every split as one corpus, so that dedup sees across splits; returns the kept
  records of each split and the per-step report, with what each step dropped per split.

  Splits are visited in the order given and a duplicate's first occurrence is kept: put the
  evaluation splits first, and a training copy of an evaluation record is the one dropped.
  """
  steps = [(spec, make_step(spec)) for spec in specs]  # every spec is checked before any runs
  records = [{**r, '_split': split} for split, rs in splits.items() for r in rs]
  report = []
  for spec, step in steps:
    before = _count(records)
    records, examples = step(records)
    after = _count(records)
    report.append({'step': spec, 'in': sum(before.values()), 'out': len(records),
                   'dropped': sum(before.values()) - len(records),
                   'dropped_by_split': {k: n - after.get(k, 0) for k, n in before.items()},
                   'examples': examples})
  kept: dict[str, list[Record]] = {split: [] for split in splits}
  for r in records:
    kept[r.pop('_split')].append(r)
  return kept, report


def _count(records: list[Record]) -> dict[str, int]:
  counts: dict[str, int] = {}
  for r in records:
    counts[r['_split']] = counts.get(r['_split'], 0) + 1
  return counts
