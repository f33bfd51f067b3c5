"""One run per workdir: an OS file lock held for the run's lifetime.

``flock`` locks belong to the open file, so the kernel drops them when the process dies
however it dies (kill -9 included): a crashed run never blocks the next one, and no stale
lock file needs cleaning. The lock file records who holds it, for the refusal message.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time

from llm_jax.errors import UsageError
from llm_jax.workdir import layout


class WorkdirLock:
  """Held from ``acquire`` until ``release`` (or the process's end)."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, layout.LOCK)
    self.file = None

  def acquire(self) -> WorkdirLock:
    try:
      handle = open(self.path, 'a+')  # noqa: SIM115 (held open: the open file holds the lock)
    except OSError as e:
      raise UsageError(f'cannot write to workdir {os.path.dirname(self.path)} '
                       f'({e.strerror}); give a writable --workdir') from None
    try:
      fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      handle.seek(0)
      holder = handle.read().strip() or 'another process'
      handle.close()
      raise UsageError(f'workdir {os.path.dirname(self.path)} is in use by a running job '
                       f'({holder}); wait for it to end or give another --workdir') from None
    handle.seek(0)
    handle.truncate()
    handle.write(f'pid {os.getpid()} on {socket.gethostname()} since '
                 f'{time.strftime("%Y-%m-%d %H:%M:%S")}\n')
    handle.flush()
    self.file = handle
    return self

  def release(self) -> None:
    if self.file is not None:
      self.file.close()  # closing drops the lock; the file stays, harmlessly, for the next run
      self.file = None
