"""``llm-jax plot``: one PNG from runs: curves, ROC / PR / confusion of a classifier, a sweep."""

from __future__ import annotations

import re

from llm_jax.cli import args as args_lib
from llm_jax.errors import UsageError

KINDS = ('curves', 'roc', 'pr', 'confusion', 'sweep')  # as evaluation.plots.KINDS


def add(sub) -> None:
  p = sub.add_parser('plot', help='a PNG of runs: training curves (any number of workdirs), '
                     'a classifier\'s ROC / PR curves or confusion matrix, a sweep\'s metric '
                     'against each searched field')
  p.add_argument('paths', nargs='+', metavar='WORKDIR',
                 help='workdirs (curves), one classifier workdir, or one sweep directory')
  p.add_argument('--out', required=True, help='the PNG to write')
  p.add_argument('--kind', default='curves', choices=KINDS)
  p.add_argument('--x', default='step', choices=('step', 'tokens'), help='curves: the x axis')
  p.add_argument('--metric', action='append', default=[],
                 help='curves: also plot this logged metric (e.g. accuracy); repeatable')
  p.add_argument('--split', default='validation', help='roc, pr, confusion: the split')
  p.add_argument('--checkpoint', default='auto', choices=('auto', 'best', 'latest'))
  p.add_argument('--size', default='', help='WIDTHxHEIGHT in pixels (default: per kind)')
  p.set_defaults(fn=run)


def _size(text: str) -> dict:
  if not text:
    return {}
  match = re.fullmatch(r'(\d+)x(\d+)', text)
  if not match or min(int(match[1]), int(match[2])) < 100:
    raise UsageError(f'--size {text!r}: give WIDTHxHEIGHT in pixels, each at least 100 '
                     '(e.g. 1200x800)')
  return {'size': (int(match[1]), int(match[2]))}


def run(args, overrides) -> None:
  args_lib.refuse_overrides('plot', overrides, ': it draws what the runs recorded')
  from llm_jax.evaluation import plots
  size = _size(args.size)
  if args.kind != 'curves' and len(args.paths) > 1:
    raise UsageError(f'--kind {args.kind} draws one {"sweep" if args.kind == "sweep" else "run"}'
                     f', got {len(args.paths)} paths; only curves overlay several workdirs')
  if args.kind == 'curves':
    out = plots.curves(args.paths, args.out, args.x, tuple(args.metric), **size)
  elif args.kind == 'sweep':
    out = plots.sweep(args.paths[0], args.out, **size)
  else:
    out = plots.classifier(args.paths[0], args.out, args.kind, args.split, args.checkpoint,
                           **size)
  print(out)
