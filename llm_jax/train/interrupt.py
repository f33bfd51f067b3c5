"""Stopping a run cleanly on SIGTERM (preemption, ``scancel``, ``kill``) or SIGINT (Ctrl-C).

The first signal only raises a flag: the loop finishes its step, writes a checkpoint and the
metrics up to it, and exits with ``errors.INTERRUPTED``; the same command then resumes as if
nothing happened. A second signal stops the process at once, as without this module.

With several processes (``jax.distributed``) JAX's preemption service owns SIGTERM: it
spreads a notice from any host to all and names one step at which every host saves
(``multihost_utils.reached_preemption_sync_point``), so no host waits on a save the others
never start.
"""

from __future__ import annotations

import signal
import sys
import threading

import jax
from jax.experimental import multihost_utils

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequests:
  """A context in which the signals above ask the loop to checkpoint and stop."""

  def __init__(self):
    self.received: str | None = None
    self._previous: dict[int, object] = {}

  def _handle(self, signum, frame) -> None:
    name = signal.Signals(signum).name
    if self.received:  # a second signal: the default action, now
      signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
      signal.raise_signal(signum)
      return
    self.received = name
    print(f'\n{name}: finishing this step and writing a checkpoint (again: stop at once)',
          file=sys.stderr)

  def __enter__(self) -> StopRequests:
    if threading.current_thread() is threading.main_thread():
      for signum in SIGNALS if jax.process_count() == 1 else ():
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for signum, previous in self._previous.items():
      signal.signal(signum, previous)
    self._previous.clear()

  def requested(self, step: int) -> str | None:
    """The signal that asks to stop after ``step`` (None: go on). With several processes
    it must be asked at every step, by every process."""
    if jax.process_count() > 1:
      return 'SIGTERM' if multihost_utils.reached_preemption_sync_point(step) else None
    return self.received
