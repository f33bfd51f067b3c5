"""``llm-jax cv``: k-fold cross-validation of a classifier config."""

from __future__ import annotations

import json

from llm_jax.cli import args as args_lib
from llm_jax.errors import UsageError


def add(sub) -> None:
  cv = sub.add_parser('cv', help='k-fold cross-validation of a classifier config, one run '
                      'per fold in WORKDIR/fold_I')
  args_lib.add_config(cv)
  cv.add_argument('--workdir', required=True)
  cv.add_argument('--folds', type=int, default=0, help='default: the config\'s data.cv_folds')
  cv.add_argument('--json', action='store_true', help='print every fold\'s figures as JSON')
  cv.set_defaults(fn=run)


def run(args, overrides) -> None:
  from llm_jax.train import crossval
  config = args_lib.config(args, overrides)
  folds = args.folds or config.data.cv_folds
  if not folds:
    raise UsageError('give --folds K (or set data.cv_folds in the config)')
  result = crossval.run(config, args.workdir, folds)
  print(json.dumps(result, indent=1) if args.json else crossval.table(result))
