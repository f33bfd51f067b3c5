"""``llm-jax sweep``: a grid, random or TPE search over config fields (llm_jax/sweep.py)."""

from __future__ import annotations

from llm_jax.cli import args as args_lib


def add(sub) -> None:
  p = sub.add_parser('sweep', help='a hyperparameter search (grid, random, TPE through Optuna),'
                     ' each trial a workdir under --dir; rerun the same command to resume')
  p.add_argument('--sweep', required=True, help='a sweep file, FILE[:ARG] (see llm_jax/sweep.py)')
  p.add_argument('--dir', required=True, help='the sweep directory (trials/, summary.*)')
  p.set_defaults(fn=run)


def run(args, overrides) -> None:
  args_lib.refuse_overrides('sweep', overrides, ': put fixed overrides in the sweep file')
  from llm_jax import sweep
  sweep.run(args.sweep, args.dir)
  with open(f'{args.dir}/summary.md') as f:
    print(f.read(), end='')
