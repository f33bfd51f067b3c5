"""k-fold cross-validation (``llm-jax cv``), one training run per fold, figures pooled.

Fold ``i`` trains in ``WORKDIR/fold_i`` with ``data.cv_fold=i``: each is an ordinary run,
so an interrupted cross-validation resumes fold by fold. A fold's figures are its best
checkpoint's where ``train.select_metric`` is set, else those at the last step.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import ml_collections
import numpy as np

from llm_jax import fileio
from llm_jax.config import ConfigError
from llm_jax.train import checks, loop


def fold_config(config: ml_collections.ConfigDict, folds: int, fold: int):
  config = ml_collections.ConfigDict(config.to_dict())
  config.data.cv_folds, config.data.cv_fold = folds, fold
  config.lock()
  checks.validate(config)
  return config


def run(config: ml_collections.ConfigDict, workdir: str, folds: int,
        progress: bool = True) -> dict[str, Any]:
  """Trains every fold in turn; returns and writes ``WORKDIR/cv.json``: per fold figures,
  and their mean and sample standard deviation."""
  if folds < 2:
    raise ConfigError(f'cross-validation needs at least 2 folds, got {folds}')
  prefix = 'best_' if config.train.select_metric else 'val_full_'
  per_fold = []
  for fold in range(folds):
    start = time.perf_counter()
    final = loop.run(fold_config(config, folds, fold), os.path.join(workdir, f'fold_{fold}'),
                      progress=progress)
    figures = {k[len(prefix):]: v for k, v in final.items() if k.startswith(prefix)}
    per_fold.append({**figures, 'seconds': time.perf_counter() - start})
  names = [k for k in per_fold[0] if isinstance(per_fold[0][k], (int, float))]
  values = {k: np.array([f[k] for f in per_fold], np.float64) for k in names}
  result = {'folds': folds, 'per_fold': per_fold,
            'mean': {k: float(v.mean()) for k, v in values.items()},
            'std': {k: float(v.std(ddof=1)) for k, v in values.items()}}
  fileio.write_atomic(os.path.join(workdir, 'cv.json'), json.dumps(result, indent=1))
  return result


def table(result: dict[str, Any]) -> str:
  shown = [k for k in ('accuracy', 'f1', 'f1_macro', 'roc_auc', 'roc_auc_macro', 'loss')
           if k in result['mean']]
  lines = [f'{result["folds"]}-fold cross-validation'] + [
      f'  {k:<14} {result["mean"][k]:.4f} +- {result["std"][k]:.4f}' for k in shown]
  lines.append(f'  per fold {shown[0]}: ' +
               ' '.join(f'{f[shown[0]]:.4f}' for f in result['per_fold']))
  return '\n'.join(lines)
