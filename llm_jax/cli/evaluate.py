"""``llm-jax eval``: a workdir's checkpoint over every example of a split."""

from __future__ import annotations

import json

from llm_jax.cli import args as args_lib

CHECKPOINTS = ('auto', 'best', 'latest')  # as workdir.CHECKPOINTS, without importing jax


def add(sub) -> None:
  ev = sub.add_parser('eval', help='metrics of a workdir\'s checkpoint over a whole split')
  ev.add_argument('--workdir', required=True)
  ev.add_argument('--split', default='validation', help='validation or test')
  ev.add_argument('--checkpoint', default='auto', choices=CHECKPOINTS,
                  help='auto: the best (train.select_metric) where kept, else the latest')
  ev.add_argument('--answers', action='store_true',
                  help='instruction tuning, text-to-text: also generate each answer, report '
                  'exact match (and BLEU, chrF for text-to-text)')
  ev.add_argument('--beams', type=int, default=1,
                  help='text-to-text --answers: beam search of this width (1: greedy)')
  ev.add_argument('--length-penalty', type=float, default=1.0,
                  help='beam scores are log-probability / length ** this (Hugging Face\'s)')
  ev.add_argument('--json', action='store_true')
  ev.set_defaults(fn=run)


def run(args, overrides) -> None:
  from llm_jax.evaluation import report
  args_lib.refuse_overrides('eval', overrides, ': it evaluates the run as it was trained')
  result = report.run(args.workdir, args.split, args.checkpoint, args.answers, args.beams,
                      args.length_penalty)
  print(json.dumps(result, indent=1) if args.json else report.table(result))
