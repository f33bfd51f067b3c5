"""Orbax checkpoints of the train state plus the loop's own small JSON record.

Orbax writes each step into a temporary directory and renames it when complete, so a run
killed at any moment leaves only whole checkpoints behind; restore targets an abstract
state carrying shardings, so a checkpoint saved on one mesh loads onto another. Using a
checkpoint (eval, predict, generate, export) restores its parameters alone: orbax's partial
restore reads no optimizer state, whatever optimizer the run trained with.
"""

from __future__ import annotations

import os
from typing import Any

import orbax.checkpoint as ocp

from llm_jax.workdir import layout


class Checkpointer:
  """``WORKDIR/checkpoints`` (the latest, to resume from) or, with ``best=True``,
  ``WORKDIR/best`` (the state of the best validation metric so far, to use)."""

  def __init__(self, workdir: str, keep: int = 3, use_async: bool = True, best: bool = False):
    self.manager = ocp.CheckpointManager(
        os.path.abspath(os.path.join(workdir, layout.BEST if best else layout.CHECKPOINTS)),
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                             enable_async_checkpointing=use_async,
                                             cleanup_tmp_directories=True))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state: Any, record: dict) -> None:
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), record=ocp.args.JsonSave(record)))

  def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict]:
    """The whole state at ``step`` (default: latest), laid out as ``abstract_state`` says."""
    step = self.latest_step() if step is None else step
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), record=ocp.args.JsonRestore()))
    return restored['state'], restored['record']

  def restore_params(self, abstract_params: Any, step: int | None = None) -> tuple[Any, dict]:
    """Only the parameters at ``step`` (default: latest) and the record; the optimizer
    state and step counter stay on disk."""
    step = self.latest_step() if step is None else step
    target = {'params': abstract_params}
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.PyTreeRestore(
            item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
            partial_restore=True),
        record=ocp.args.JsonRestore()))
    return restored['state']['params'], restored['record']

  def close(self) -> None:
    """Blocks until pending async saves are on disk."""
    self.manager.wait_until_finished()
    self.manager.close()
