"""Small file helpers whose point is that nothing in a workdir is ever half-written."""

from __future__ import annotations

import os
import tempfile


def write_atomic(path: str, text: str | bytes) -> None:
  """Writes ``text`` (or bytes) to a temporary file beside ``path`` and renames it into place."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix='.' + os.path.basename(path) + '.')
  try:
    with os.fdopen(fd, 'wb' if isinstance(text, bytes) else 'w') as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    os.unlink(tmp)
    raise


def write_safetensors(path: str, tensors: dict) -> None:
  """Atomically, with the metadata transformers expects of a PyTorch-format file. Arrays are
  made C-contiguous: safetensors writes a numpy array's buffer as is, and a transposed view
  (a kernel exported from host parameters) would be stored untransposed."""
  import numpy as np
  from safetensors.numpy import save_file
  tmp = path + '.tmp'
  save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, tmp,
            metadata={'format': 'pt'})
  os.replace(tmp, path)
