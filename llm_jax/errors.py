"""The errors a user can fix, and the exit codes the CLI gives them.

Each is printed by the CLI as one line, never as a traceback (``LLM_JAX_DEBUG=1`` shows it).
The codes let a scheduler or a sweep tell the outcomes apart:

  0   the run finished
  1   a bug: an unforeseen exception, printed with its traceback
  2   bad input (``UsageError``): a config field, a file, a token, a checkpoint; fix and rerun
  3   the run diverged (``Diverged``): a non-finite loss or gradient; its checkpoints are finite
  75  interrupted (SIGTERM/SIGINT) after writing a checkpoint: rerun the same command to resume
      (75 is sysexits' EX_TEMPFAIL, "try again later")
"""

USAGE = 2
DIVERGED = 3
INTERRUPTED = 75


class UsageError(ValueError):
  """Bad input (a config field, a file, a token, a checkpoint); the message says the fix."""

  exit_code = USAGE


class Diverged(UsageError):
  """Training produced a non-finite loss or gradient; nothing non-finite was checkpointed."""

  exit_code = DIVERGED


class Interrupted(Exception):
  """A signal stopped the run after it wrote a checkpoint; resuming continues it exactly."""

  exit_code = INTERRUPTED
