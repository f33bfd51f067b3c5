"""The ``llm-jax`` command: train, cv, sweep, eval, plot, generate, predict, tokenizer, convert,
plan, bench.

One module per command, each a thin call into the library. Config overrides are
``--config.section.field=value`` arguments after ``--config=FILE[:ARG]``. Errors a user can
fix (a config field, a missing file) print one line and exit with the code
``llm_jax.errors`` documents; ``LLM_JAX_DEBUG=1`` shows their tracebacks too.
"""

from __future__ import annotations

import argparse
import os
import sys

from llm_jax import errors, host, quiet
from llm_jax.cli import args as args_lib
from llm_jax.cli import (
  bench,
  convert,
  cv,
  evaluate,
  generate,
  plan,
  plot,
  predict,
  sweep,
  tokenizer,
  train,
)

COMMANDS = (train, cv, sweep, evaluate, plot, generate, predict, tokenizer, convert, plan, bench)


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
  host.keep_compiled_programs()
  quiet.silence_background_noise()
  try:
    args.fn(args, overrides)
  except (errors.UsageError, errors.Interrupted, FileNotFoundError) as e:
    if os.environ.get('LLM_JAX_DEBUG') == '1':
      raise
    kind = 'stopped' if isinstance(e, errors.Interrupted) else 'error'
    print(f'llm-jax {args.command}: {kind}: {e}', file=sys.stderr)
    sys.exit(getattr(e, 'exit_code', errors.USAGE))

