"""Orbax checkpoints of the train state plus the loop's own small JSON record.

Orbax writes each step into a temporary directory and renames it when complete, so a run
killed at any moment leaves only whole checkpoints behind; restore targets an abstract
state carrying shardings, so a checkpoint saved on one mesh loads onto another.
"""

from __future__ import annotations

import os
from typing import Any

import orbax.checkpoint as ocp


class Checkpointer:
  """``WORKDIR/checkpoints`` (the latest, to resume from) or, with ``kind='best'``,
  ``WORKDIR/best`` (the state of the best validation metric so far, to use)."""

  def __init__(self, workdir: str, keep: int = 3, use_async: bool = True,
               kind: str = 'checkpoints'):
    self.manager = ocp.CheckpointManager(
        os.path.abspath(os.path.join(workdir, kind)),
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                             enable_async_checkpointing=use_async,
                                             cleanup_tmp_directories=True))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state: Any, record: dict) -> None:
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), record=ocp.args.JsonSave(record)))

  def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict]:
    """The state at ``step`` (default: latest), laid out as ``abstract_state`` says."""
    step = self.latest_step() if step is None else step
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), record=ocp.args.JsonRestore()))
    return restored['state'], restored['record']

  def close(self) -> None:
    """Blocks until pending async saves are on disk."""
    self.manager.wait_until_finished()
    self.manager.close()
