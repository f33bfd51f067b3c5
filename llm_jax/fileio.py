"""Small file helpers whose point is that nothing in a workdir is ever half-written."""

from __future__ import annotations

import os
import tempfile


def write_atomic(path: str, text: str) -> None:
  """Writes ``text`` to a temporary file beside ``path`` and renames it into place."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix='.' + os.path.basename(path) + '.')
  try:
    with os.fdopen(fd, 'w') as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    os.unlink(tmp)
    raise
