"""Orbax checkpoints of the train state plus the loop's own small JSON record.

Orbax writes each step into a temporary directory and renames it when complete, so a run
killed at any moment leaves only whole checkpoints behind; restore targets an abstract
state carrying shardings, so a checkpoint saved on one mesh loads onto another. Using a
checkpoint (eval, predict, generate, export) restores its parameters alone: orbax's partial
restore reads no optimizer state, whatever optimizer the run trained with.

Checkpoints are verified, not trusted: a step without orbax's commit record (a crash
mid-save, or its metadata deleted) never counts as latest, a step whose parameter shapes
differ from what the config builds is refused by tensor name, and a step that fails to
restore (a truncated file) gives way to the previous complete one with one warning line.
Async save errors (a full disk) surface at the next step, as one line.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

import orbax.checkpoint as ocp
from flax import traverse_util

from llm_jax import quiet
from llm_jax.errors import UsageError
from llm_jax.workdir import layout

# What orbax writes into a step directory last, once every item is on disk.
COMMIT_RECORD = '_CHECKPOINT_METADATA'
DAMAGED = '.damaged'  # suffix of a step directory set aside by a resume (orbax ignores it)


def _reason(e: BaseException) -> str:
  """The innermost cause of an orbax or tensorstore error, in one short line."""
  while e.__cause__ is not None or e.__context__ is not None:
    e = e.__cause__ or e.__context__
  text = str(e).strip().split(' See full TensorStore details')[0].splitlines()
  return f'{type(e).__name__}: {text[0][:200] if text else ""}'


class Checkpointer:
  """``WORKDIR/checkpoints`` (the latest, to resume from) or, with ``best=True``,
  ``WORKDIR/best`` (the state of the best validation metric so far, to use)."""

  def __init__(self, workdir: str, keep: int = 3, use_async: bool = True, best: bool = False):
    self.directory = os.path.abspath(os.path.join(workdir, layout.BEST if best
                                                  else layout.CHECKPOINTS))
    self.options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                                enable_async_checkpointing=use_async,
                                                cleanup_tmp_directories=True)
    self.manager = self._manager()
    self.saving: int | None = None  # the step of an async save not yet known to be on disk

  def _manager(self) -> ocp.CheckpointManager:
    with quiet.absl_warnings():  # orbax warns of steps without metadata; steps() says so
      return ocp.CheckpointManager(self.directory, options=self.options)

  def _complete(self, step: int) -> bool:
    path = os.path.join(self.directory, str(step), COMMIT_RECORD)
    try:
      with open(path) as f:
        return bool(json.load(f).get('commit_timestamp_nsecs'))
    except (OSError, ValueError):
      return False

  def steps(self) -> list[int]:
    """The complete steps, newest first."""
    return sorted((s for s in self.manager.all_steps() if self._complete(s)), reverse=True)

  def latest_step(self) -> int | None:
    steps = self.steps()
    return steps[0] if steps else None

  def save(self, step: int, state: Any, record: dict) -> None:
    self.check_saved(wait=True)  # orbax would wait for it too, and blame the wrong step
    try:
      self.manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state), record=ocp.args.JsonSave(record)))
    except Exception as e:
      raise self._save_error(step, e) from None
    self.saving = step

  def check_saved(self, wait: bool = False) -> None:
    """Raises, as one line, the error of an async save that failed (a full disk); with
    ``wait``, after waiting for the save in flight."""
    try:
      if wait:
        self.manager.wait_until_finished()
      self.manager.check_for_errors()
    except Exception as e:
      raise self._save_error(self.saving, e) from None

  def _save_error(self, step: int | None, e: BaseException) -> UsageError:
    kept = [s for s in self.steps() if s != step]
    return UsageError(
        f'checkpoint of step {step} could not be written to {self.directory} ({_reason(e)}); '
        f'{"steps " + ", ".join(map(str, kept)) + " are intact; " if kept else ""}'
        'free disk space (or fix the directory) and rerun the same command to resume')

  def _check_shapes(self, abstract_params: Any, step: int) -> None:
    """Refuses, naming the tensor, a checkpoint the config would not fit (it was saved by
    another model, or the workdir's config.json or tokenizer/ changed since)."""
    reader = ocp.CheckpointManager(self.directory, item_handlers={
        'state': ocp.StandardCheckpointHandler(), 'record': ocp.JsonCheckpointHandler()})
    try:
      saved = reader.item_metadata(step)['state']['params']
    finally:
      reader.close()
    want = traverse_util.flatten_dict(abstract_params, sep='/')
    have = traverse_util.flatten_dict(dict(saved), sep='/')
    for name in sorted(set(want) | set(have)):
      if name not in have or name not in want or tuple(have[name].shape) != tuple(
          want[name].shape):
        saved_as = f'shape {tuple(have[name].shape)}' if name in have else 'no such tensor'
        built_as = f'shape {tuple(want[name].shape)}' if name in want else 'no such tensor'
        raise UsageError(
            f'checkpoint step {step} in {self.directory} holds params/{name} as {saved_as}, '
            f'but the workdir\'s config.json and tokenizer/ build {built_as}; they no longer '
            'match the checkpoints: restore them, or train in a new --workdir')

  def _first_restorable(self, restore: Callable[[int], Any], abstract_params: Any
                        ) -> tuple[Any, list[int]]:
    """``restore(step)`` of the newest complete step that restores, and the steps after it
    (damaged or incomplete)."""
    steps = self.steps()
    incomplete = sorted(set(self.manager.all_steps()) - set(steps))
    if incomplete:
      print(f'warning: checkpoint step(s) {incomplete} in {self.directory} are incomplete '
            f'(no {COMMIT_RECORD}: a crash mid-save?); they are not used', file=sys.stderr)
    for i, step in enumerate(steps):
      try:
        with quiet.absl_warnings():
          self._check_shapes(abstract_params, step)
          restored = restore(step)
      except UsageError:
        raise
      except Exception as e:  # a truncated or missing file: this step is damaged
        later = steps[i + 1] if i + 1 < len(steps) else None
        print(f'warning: checkpoint step {step} in {self.directory} is damaged ({_reason(e)}); '
              + (f'falling back to step {later}' if later is not None else 'no earlier step'),
              file=sys.stderr)
        continue
      return restored, sorted(s for s in self.manager.all_steps() if s > step)
    raise UsageError(f'no checkpoint in {self.directory} can be restored (steps '
                     f'{sorted(self.manager.all_steps())} are damaged or incomplete); train in '
                     'a new --workdir, or delete the checkpoints to start over')

  def restore(self, abstract_state: Any) -> tuple[Any, dict, list[int]]:
    """The whole state of the newest restorable step, laid out as ``abstract_state`` says;
    the record; and the newer steps that were damaged or incomplete. Those are renamed
    ``STEP.damaged`` (kept for inspection, ignored by orbax) so the resumed run can write
    its own checkpoints at their steps."""
    def restore(step):
      return self.manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state), record=ocp.args.JsonRestore()))
    restored, skipped = self._first_restorable(restore, abstract_state.params)
    if skipped:
      for step in skipped:
        path = os.path.join(self.directory, str(step))
        aside = path + DAMAGED
        n = 1
        while os.path.exists(aside):
          aside, n = f'{path}{DAMAGED}.{n}', n + 1
        os.rename(path, aside)
      self.manager.close()
      self.manager = self._manager()
    return restored['state'], restored['record'], skipped

  def restore_params(self, abstract_params: Any) -> tuple[Any, dict]:
    """Only the parameters of the newest restorable step and its record; the optimizer
    state and step counter stay on disk, and nothing in the directory changes."""
    target = {'params': abstract_params}

    def restore(step):
      return self.manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.PyTreeRestore(
              item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
              partial_restore=True),
          record=ocp.args.JsonRestore()))
    restored, _ = self._first_restorable(restore, abstract_params)
    return restored['state']['params'], restored['record']

  def close(self) -> None:
    """Blocks until pending async saves are on disk; raises one line if one failed."""
    if self.manager is None:
      return
    try:
      self.check_saved(wait=True)
    finally:
      self.manager.close()
      self.manager = None

  def exit(self, exc_type, exc, tb) -> bool:
    """``ExitStack.push`` protocol: closes; on the way out of an error, a failed save is
    reported as a warning line so that it does not hide the error itself."""
    if exc_type is None:
      self.close()
    else:
      try:
        self.close()
      except UsageError as e:
        print(f'warning: {e}', file=sys.stderr)
    return False
