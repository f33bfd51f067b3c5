"""Silencing what libraries' background threads print to stderr, which is not ours to show.

A tensorstore read that fails (a damaged checkpoint) leaves orbax's sibling reads in flight.
When they finish, after orbax's asyncio loop has closed, each callback reports ``RuntimeError:
Event loop is closed`` and each abandoned read its own copy of the read error, through
``sys.unraisablehook`` and asyncio's "Task exception was never retrieved" log, interleaved
across threads, while the error that matters has already been raised (and handled: llm_jax
falls back to an earlier step). Those, and only those, are dropped; so are the tracebacks
orbax logs before it raises (a full disk), which llm_jax reports as one line, and the
"coroutine ... was never awaited" warning an abandoned save's coroutine prints when it is
collected at exit, after that line (llm_jax itself has no coroutines).

tfds and orbax also warn, through absl, about what llm_jax has already handled and said in
its own words (custom builder configs; a checkpoint step without metadata); ``absl_warnings``
mutes them where llm_jax calls them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings

_previous = sys.unraisablehook


def _is_noise(unraisable) -> bool:
  exc = unraisable.exc_value
  if isinstance(exc, RuntimeError) and str(exc) == 'Event loop is closed':
    return True
  code = getattr(unraisable.object, 'cr_code', None)  # an abandoned coroutine of orbax's
  return (code is not None and '/orbax/' in code.co_filename.replace('\\', '/')) or \
      _from_orbax(exc)


def _unraisablehook(unraisable) -> None:
  if not _is_noise(unraisable):
    _previous(unraisable)


def _from_orbax(exc: BaseException | None) -> bool:
  """Whether ``exc`` (or what caused it) was raised inside orbax or by tensorstore under it
  (whose errors carry no Python frames, only their OCDBT / TensorStore wording)."""
  while exc is not None:
    if 'OCDBT' in str(exc) or 'TensorStore' in str(exc):
      return True
    tb = exc.__traceback__
    while tb is not None:
      if '/orbax/' in tb.tb_frame.f_code.co_filename.replace('\\', '/'):
        return True
      tb = tb.tb_next
    exc = exc.__cause__ or exc.__context__
  return False


def _orbax_task_noise(record: logging.LogRecord) -> bool:
  """False (drop) for an abandoned orbax task's or future's never-retrieved exception."""
  return not ('exception was never retrieved' in record.getMessage() and record.exc_info
              and _from_orbax(record.exc_info[1]))


def _orbax_traceback_log(record: logging.LogRecord) -> bool:
  """False (drop) for an error orbax logs with its traceback before raising it (from a save
  thread, or from ``wait_until_finished``): llm_jax reports what is raised, in one line."""
  return not ('/orbax/' in record.pathname.replace('\\', '/') and record.exc_info
              and record.levelno >= logging.ERROR)


def silence_background_noise() -> None:
  """Installs the filters (``sys.unraisablehook``, the ``asyncio`` and ``absl`` loggers),
  unless ``LLM_JAX_DEBUG=1`` asks to see everything."""
  if os.environ.get('LLM_JAX_DEBUG') == '1':
    return
  from absl import logging as absl_logging  # absl's own logger, which knows its callers

  sys.unraisablehook = _unraisablehook
  warnings.filterwarnings('ignore', message=r"coroutine '.*' was never awaited",
                          category=RuntimeWarning)
  logging.getLogger('asyncio').addFilter(_orbax_task_noise)
  absl_logging.get_absl_logger().addFilter(_orbax_traceback_log)


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
