"""Host-process settings that decide speed before any kernel runs: the C library's memory
reuse, and where compiled programs are kept between commands.

XLA:CPU allocates each executable's intermediates as one temporary buffer per call. glibc's
``malloc`` serves a block that large with ``mmap`` and returns it to the kernel on ``free``,
so every step faults every page of it back in, zero-filled: 11,800 page faults and 40 ms of
system time per 75 ms Shakespeare step on a 2-core Zen 3 (56 s of the whole recipe's system
time on a Xeon). Keeping freed memory in the process (``mallopt``: no mmap below 2 GiB, the
most ``mallopt``'s int takes, and no trimming) removes them; the memory is reused by the next
step, so the resident size stays about what one step needs. 1 GiB was too low for the 6L/384
Transformer at batch 16, whose temporary is larger: 390,000 faults and 1.1 s of system time
in a 3.7 s step. A temporary over 2 GiB is still mapped fresh each step.

That holds only in the main arena. A thread's own arena grows by heaps of at most 64 MiB, so a
larger block allocated on one of XLA's threads is mmapped whatever the threshold: T5-tiny's
span-corruption step (logits of 32 x 141 x 8,100 floats, 146 MB) faulted 71,000 pages per step
and spent a sixth of its CPU time in the kernel. One arena for every thread (``M_ARENA_MAX=1``)
keeps those blocks too: 4x fewer faults, 16% more tokens/s. Nor is the heap ever trimmed: a
step that frees more than any threshold at the heap's top (the PTB Transformer's 1.1 to 1.6
GB) would give it back with ``brk`` and fault it in again at the next step (design pitfall 15).

Compiling is the largest part of a small run's start: 14 s of BERT-tiny's 40 s one-step run
(18 programs) on a 2-core Zen 3. JAX's persistent compilation cache keeps each executable on
disk under a hash of its program, the flags and the versions, so the next command with the
same shapes (a rerun, a resume, an evaluation, a sweep's next trial) loads it instead
(design pitfall 26).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

import jax

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_KEEP_BELOW = 2**31 - 1  # the most mallopt takes (an int)
_NEVER = -1  # M_TRIM_THRESHOLD: never give the heap's free top back (mallopt(3))

CACHE_DIR_ENV = 'LLM_JAX_CACHE_DIR'


def cache_root() -> str:
  """Where every command's caches live (prepared datasets, compiled programs):
  ``$LLM_JAX_CACHE_DIR``, else ``~/.cache/llm_jax``."""
  return os.path.expanduser(os.environ.get(CACHE_DIR_ENV, '~/.cache/llm_jax'))


def keep_compiled_programs() -> str | None:
  """Points JAX's persistent compilation cache at ``cache_root()/jax``; returns the directory
  in use, or None when it is off.

  JAX's own settings win: ``JAX_COMPILATION_CACHE_DIR`` chooses another directory and
  ``JAX_ENABLE_COMPILATION_CACHE=false`` turns the cache off. Programs that compile in under
  ``jax_persistent_cache_min_compile_time_secs`` (JAX's default, 1 s) are not kept: keeping
  those too made BERT-tiny's rerun no faster.
  """
  if not jax.config.jax_enable_compilation_cache:
    return None
  if jax.config.jax_compilation_cache_dir is None:
    jax.config.update('jax_compilation_cache_dir', os.path.join(cache_root(), 'jax'))
  return jax.config.jax_compilation_cache_dir


def keep_freed_memory() -> bool:
  """Tells glibc to keep freed blocks under 2 GiB for reuse, in one arena for all threads,
  and never to give the heap's free top back to the kernel;
  returns whether it took effect.

  A no-op (False) off glibc, and when ``LLM_JAX_MALLOC=default`` asks for the C library's
  own behaviour.
  """
  if os.environ.get('LLM_JAX_MALLOC') == 'default':
    return False
  name = ctypes.util.find_library('c')
  try:
    libc = ctypes.CDLL(name)
    mallopt = libc.mallopt
  except (OSError, AttributeError, TypeError):
    return False
  return bool(mallopt(_M_TRIM_THRESHOLD, _NEVER) and
              mallopt(_M_MMAP_THRESHOLD, _KEEP_BELOW) and mallopt(_M_ARENA_MAX, 1))
