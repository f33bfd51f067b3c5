"""The ``llm-jax`` command: train, cv, eval, generate, predict, tokenizer, convert, plan, bench.

One module per command, each a thin call into the library. Config overrides are
``--config.section.field=value`` arguments after ``--config=FILE[:ARG]``. Errors a user can
fix (a config field, a missing file) print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import sys

from llm_jax import host
from llm_jax.cli import args as args_lib
from llm_jax.cli import bench, convert, cv, evaluate, generate, plan, predict, tokenizer, train
from llm_jax.errors import UsageError

COMMANDS = (train, cv, evaluate, generate, predict, tokenizer, convert, plan, bench)


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog='llm-jax', description=__doc__.splitlines()[0])
  sub = p.add_subparsers(dest='command', required=True)
  for command in COMMANDS:
    command.add(sub)
  return p


def main(argv: list[str] | None = None) -> None:
  argv = sys.argv[1:] if argv is None else argv
  rest, overrides = args_lib.split_overrides(argv)
  args = parser().parse_args(rest)
  host.keep_freed_memory()  # before jax allocates anything (host.py says why)
  try:
    args.fn(args, overrides)
  except (UsageError, FileNotFoundError) as e:
    print(f'llm-jax {args.command}: error: {e}', file=sys.stderr)
    sys.exit(2)

