"""The error a user can fix: printed by the CLI as one line, never as a traceback."""


class UsageError(ValueError):
  """Bad input (a config field, a file, a token, a checkpoint); the message says the fix."""
