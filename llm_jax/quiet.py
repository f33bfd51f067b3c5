"""Silencing what libraries' background threads print to stderr, which is not ours to show.

A tensorstore read that fails (a damaged checkpoint) leaves its sibling reads' callbacks to
fire after orbax's asyncio loop has closed; each prints a ``RuntimeError: Event loop is
closed`` traceback from its own thread, some interleaved, while the error that matters has
already been raised in the main thread. Those, and only those, are dropped.

tfds and orbax also warn, through absl, about what llm_jax has already handled and said in
its own words (custom builder configs; a checkpoint step without metadata); ``absl_warnings``
mutes them where llm_jax calls them.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading

_previous = sys.excepthook


def _is_closed_loop_noise(exc_type, exc) -> bool:
  return (exc_type is RuntimeError and str(exc) == 'Event loop is closed'
          and threading.current_thread() is not threading.main_thread())


def _excepthook(exc_type, exc, tb) -> None:
  if not _is_closed_loop_noise(exc_type, exc):
    _previous(exc_type, exc, tb)


def _threading_excepthook(args) -> None:
  if not _is_closed_loop_noise(args.exc_type, args.exc_value):
    threading.__excepthook__(args)


def silence_background_noise() -> None:
  """Installs the filters (``sys.excepthook``, which pybind callbacks report through, and
  ``threading.excepthook``)."""
  sys.excepthook = _excepthook
  threading.excepthook = _threading_excepthook


@contextlib.contextmanager
def absl_warnings():
  """Within: absl's (tfds's, orbax's) warnings are muted, its errors still shown."""
  logger = logging.getLogger('absl')
  level = logger.level
  logger.setLevel(logging.ERROR)
  try:
    yield
  finally:
    logger.setLevel(level)
