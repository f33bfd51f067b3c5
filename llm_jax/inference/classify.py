"""Labels for new text from a trained classifier workdir (its own tokenizer and labels)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np

from llm_jax.data import loader
from llm_jax.errors import UsageError
from llm_jax.workdir import Trained


def labels(trained: Trained, texts: Sequence[str],
             batch_size: int = 64) -> list[tuple[str, float]]:
  """(label, probability of that label) per text, truncated to the run's ``train.seq_len``."""
  task = trained.task
  if not task.labelled:
    raise UsageError(f'the workdir holds a {task.name} run, not a classifier: predict labels '
                     'with a workdir of objective="classification"')
  tokens = trained.tokenizer.encode_batch(list(texts))
  batches = loader.classification(tokens, np.zeros(len(texts), np.int64), batch_size,
                                  trained.config.train.seq_len, trained.tokenizer.special,
                                  seed=0, train=False)
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
