"""What every command shares: ``--config.a.b=value`` overrides and the config they amend."""

from __future__ import annotations

import argparse

from llm_jax.errors import UsageError


def split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
  """(the other arguments, the overrides without their ``--config.`` prefix)."""
  overrides, rest = [], []
  for arg in argv:
    if arg.startswith('--config.'):
      overrides.append(arg[len('--config.'):])
    else:
      rest.append(arg)
  return rest, overrides


def add_config(parser: argparse.ArgumentParser, **kwargs) -> None:
  kwargs.setdefault('required', True)
  parser.add_argument('--config', help='config file, optionally FILE:ARG (the argument of its '
                      'get_config); override fields with --config.section.field=value',
                      **kwargs)


def config(args: argparse.Namespace, overrides: list[str]):
  """The config file with its overrides, checked for training before anything compiles."""
  from llm_jax.train import checks
  return checks.load(args.config, overrides)


def refuse_overrides(command: str, overrides: list[str], why: str = '') -> None:
  if overrides:
    raise UsageError(f'{command} takes no --config overrides{why}')
