"""Labels for new text from a trained classifier workdir (its own tokenizer and labels)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np

from llm_jax.data import loader, pipeline
from llm_jax.errors import UsageError
from llm_jax.workdir import Trained


def labels(trained: Trained, texts: Sequence[str],
             batch_size: int = 64) -> list[tuple[str, float]]:
  """(label, probability of that label) per text, truncated to the run's ``train.seq_len``.
  A classifier of sentence pairs reads each text as ``first<TAB>second``."""
  task = trained.task
  if not task.labelled:
    raise UsageError(f'the workdir holds a {task.name} run, not a classifier: predict labels '
                     'with a workdir of objective="classification"')
  encode = trained.tokenizer.encode_batch
  tokens = encode(list(texts))
  if trained.config.data.text_pair_field:
    halves = [text.split('\t', 1) for text in texts]
    for n, pair in enumerate(halves, 1):
      if len(pair) != 2:
        raise UsageError(f'text {n}: this classifier reads sentence pairs; give each text as '
                         'FIRST<TAB>SECOND')
    tokens = list(zip(encode([a for a, _ in halves]), encode([b for _, b in halves])))
  batches = loader.classification(tokens, np.zeros(len(texts), np.int64), batch_size,
                                  trained.config.train.seq_len, trained.tokenizer.special,
                                  seed=0, train=False,
                                  pair_style=pipeline.pair_style(trained.config.model))
  predict = jax.jit(lambda params, batch: task.predict(trained.model, params, batch))
  out = []
  for batch in batches:
    probs = np.asarray(predict(trained.params, batch))[batch['example_mask'] > 0]
    for row in probs:
      if row.ndim == 0:  # regression: the value itself
        out.append(('value', float(row)))
      else:
        k = int(row.argmax())
        name = trained.label_names[k] if k < len(trained.label_names) else str(k)
        out.append((name, float(row[k])))
  return out
