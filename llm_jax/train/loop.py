"""The training loop: one readable function to fork, not a trainer to subclass.

Data flows one way: config -> tokens -> batches -> jitted step -> metrics and checkpoints.
The host never waits on the device inside the loop except at log, eval and checkpoint steps.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from flax import traverse_util
from tqdm.auto import tqdm

from llm_jax import config as config_lib
from llm_jax import models, parallel, tasks
from llm_jax import workdir as workdir_lib
from llm_jax.data import pipeline
from llm_jax.errors import Diverged, Interrupted, UsageError
from llm_jax.evaluation import metrics as metrics_lib
from llm_jax.evaluation import passes, selection
from llm_jax.train import checks, epochs, freeze, interrupt, optim
from llm_jax.train import setup as setup_lib
from llm_jax.train.logbook import Logbook
from llm_jax.workdir import layout
from llm_jax.workdir.checkpoints import Checkpointer
from llm_jax.workdir.lock import WorkdirLock

# Sections that must match for a workdir's checkpoint to be resumed by a new config.
RESUME_MUST_MATCH = ('seed', 'data', 'model')


def _check_workdir(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Refuses to resume a workdir whose checkpoint was trained under another model or data,
  naming each field that differs."""
  old = layout.read_config(workdir)
  if old is None:
    return
  old, new = old.to_dict(), config.to_dict()
  if not tasks.get(config.objective).batchings:  # a field this task ignores
    old['data'].pop('batching', None)
    new['data'].pop('batching', None)
  old, new = (traverse_util.flatten_dict({s: d[s] for s in RESUME_MUST_MATCH}, sep='.')
              for d in (old, new))
  differ = [f'{k}={old.get(k)!r} in the workdir, {new.get(k)!r} now'
            for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
  if differ:
    raise config_lib.ConfigError(
        f'workdir {workdir} holds a run with other settings ({"; ".join(differ)}); use a new '
        '--workdir, or the same config to resume it')


def _open_workdir(workdir: str) -> WorkdirLock | None:
  """Creates the workdir and takes its lock (process 0 only: the other processes of the run
  share it); a path that cannot be a workdir is refused in one line."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise UsageError(f'--workdir {workdir} is a file, not a directory; give a directory '
                     '(it is created if missing)')
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise UsageError(f'cannot create --workdir {workdir} ({e.strerror}); give a path you can '
                     'write to') from None
  if not os.access(workdir, os.W_OK):
    raise UsageError(f'--workdir {workdir} is not writable; give a path you can write to')
  return WorkdirLock(workdir).acquire() if jax.process_index() == 0 else None


def run(config: ml_collections.ConfigDict, workdir: str, *, progress: bool = True,
        profile: tuple[int, int] | None = None,
        on_eval: Callable[[int, dict[str, float], bool], None] | None = None
        ) -> dict[str, Any]:
  """Trains (or resumes) the configured model in ``workdir``; returns the final metrics.

  ``on_eval(step, figures, last)`` sees each periodic evaluation as ``<split>_<metric>``
  figures (``val_loss``, ``val_full_accuracy``) as it is logged, ``last`` at the final step;
  an exception it raises stops the run there (a sweep's pruning), after the checkpoints
  written so far are complete.

  ``profile=(start, stop)`` writes a ``jax.profiler`` trace of those steps (host loop and
  device kernels; open it in Perfetto or TensorBoard) to the workdir's ``profile/``.
  Raises ``Interrupted`` after checkpointing on SIGTERM/SIGINT, ``Diverged`` at a non-finite
  loss or gradient (``llm_jax.errors`` gives their exit codes).
  """
  checks.validate(config)
  lock = _open_workdir(workdir)  # before anything in the workdir is read or written
  try:
    with interrupt.StopRequests() as stop, contextlib.ExitStack() as closing:
      return _train(config, workdir, stop, closing, progress, profile, on_eval)
  finally:
    if lock is not None:
      lock.release()


def _nonfinite(host: dict, skipped: float, allowed: int) -> tuple[float, str | None]:
  """The run's skipped steps counting an interval's sums, and why to stop (None: go on)."""
  total = skipped + float(host['skipped'])
  if total <= allowed or not host['skipped']:
    return total, None
  what = [name for name, key in (('loss', 'nonfinite_loss'), ('gradient', 'nonfinite_grad'))
          if host[key]]
  return total, (
      f'step {int(host["first_skipped_min"]) + 1}: the {" and the ".join(what)} '
      f'{"are" if len(what) > 1 else "is"} not finite (NaN or inf; '
      f'{int(total)} such step(s), {allowed} allowed); no such update was applied and no '
      'checkpoint holds one; lower optim.lr (or raise optim.warmup_steps, set '
      'optim.clip_norm), or let train.skip_nonfinite=N skip a few')


def _train(config, workdir, stop, closing, progress, profile, on_eval) -> dict[str, Any]:
  """The run itself; ``closing`` closes what it opens, on success and on error alike (so a
  run that stops with an error still finishes writing its earlier checkpoints)."""
  task = tasks.get(config.objective)
  _check_workdir(workdir, config)
  data = pipeline.load(config, layout.saved_tokenizer(workdir))
  if config.train.epochs:
    config = epochs.resolve(config, data.epoch_steps())
  t = config.train
  model_cfg = config_lib.model_config(config, data.tokenizer.vocab_size)
  if model_cfg.vocab_size < data.tokenizer.vocab_size:
    raise config_lib.ConfigError(
        f'model.vocab_size={model_cfg.vocab_size} is smaller than the tokenizer\'s '
        f'{data.tokenizer.vocab_size}; set it to 0 (automatic) or to at least that')
  label_names = getattr(data, 'label_names', None)
  if jax.process_index() == 0:
    layout.write_run(workdir, config, data.tokenizer, data.clean_report, label_names)

  labels = task.outputs(config, label_names or ())
  selection.check_select_metric(t.select_metric, task, labels)
  setup = setup_lib.build(config, model_cfg, data.tokenizer.special, label_names or ())
  checkpoints = Checkpointer(workdir, t.keep_checkpoints, t.async_checkpoints)
  closing.push(checkpoints.exit)
  best_checkpoints = None
  if t.select_metric:
    best_checkpoints = Checkpointer(workdir, 1, t.async_checkpoints, best=True)
    closing.push(best_checkpoints.exit)
  resuming = checkpoints.latest_step() is not None
  record = {'step': 0, 'train_sums': None, 'data': None}
  pretrained, damaged = None, []
  if config.finetune.pretrained and not resuming:  # checked by name before anything compiles
    pretrained = workdir_lib.pretrained_params(config.finetune.pretrained)
    models.check_pretrained(setup.abstract_state.params, pretrained)
  if resuming:
    state, record, damaged = checkpoints.restore(setup.abstract_state)
  else:
    state = setup.init()
    if pretrained is not None:
      params, report = models.load_pretrained(jax.device_get(state.params), pretrained)
      state = state.replace(params=jax.device_put(params, jax.tree_util.tree_map(
          lambda x: x.sharding, state.params)))
      print(report.summary(), file=sys.stderr)
  if task.finetunes:
    trainable, total = freeze.count(state.params, config.finetune.freeze)
    print(f'trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.2f}%)',
          file=sys.stderr)
  start = record['step']
  # early stopping: the best whole-validation figures so far and evaluations since they improved
  best, stale, stopped = record.get('best'), record.get('stale', 0), record.get('stopped', False)
  skipped = record.get('skipped', 0.0)
  logbook = Logbook(workdir, start if resuming else -1, t.wandb_project, config.to_dict())
  closing.callback(logbook.close)
  if damaged:
    logbook.write(start, 'resume', {'fell_back_from': float(max(damaged))})
  lr_at = optim.schedule(config.optim, t.steps)
  train_batches = data.train(record.get('data'))

  def whole(split: str) -> dict[str, float]:
    return passes.whole_split(setup.evaluator, state.params, data.full[split](), labels)

  def log_eval(step: int, split: str, figures: dict[str, float]) -> None:
    logbook.write(step, split, figures)
    if on_eval is not None:
      on_eval(step, {f'{split}_{k}': v for k, v in figures.items()}, step == t.steps)

  with parallel.activate(setup.mesh):
    if start == 0 and t.eval_every and t.eval_batches:
      logbook.write(0, 'val', passes.losses(setup.evaluator, state.params, data.estimate(0)))
    sums = (None if record['train_sums'] is None else
            {k: jnp.asarray(v, jnp.float32) for k, v in record['train_sums'].items()})
    bar = closing.enter_context(tqdm(total=t.steps, initial=start, dynamic_ncols=True,
                                   unit='step', disable=not (progress and logbook.enabled)))
    tick, tick_step = time.perf_counter(), start

    def say(message: str) -> None:
      if not bar.disable:
        bar.write(message, file=sys.stderr)

    def guard(host: dict | None) -> float:
      """The skipped steps so far; stops before anything is logged or saved from an interval
      with one too many."""
      if host is None:
        return skipped
      total, why = _nonfinite(host, skipped, t.skip_nonfinite)
      if why:
        raise Diverged(why)
      return total

    for step in range(start, start if stopped else t.steps):
      if profile and step == max(profile[0], start) and step < profile[1]:
        jax.profiler.start_trace(os.path.join(workdir, layout.PROFILE), create_perfetto_trace=True)
      batch = parallel.global_batch(next(train_batches), setup.data_sharding)
      state, metrics = setup.train_step(state, batch)
      sums = setup_lib.accumulate(sums, metrics)
      done = step + 1
      checkpoints.check_saved()  # an async save that failed (a full disk) stops the run now
      if profile and done == min(profile[1], t.steps) and max(profile[0], start) < profile[1]:
        jax.block_until_ready(metrics)
        jax.profiler.stop_trace()
        say(f'step {done}: profile of steps {max(profile[0], start)}..{step} in '
            f'{os.path.join(workdir, layout.PROFILE)}')
      bar.update(1)
      signal_name = stop.requested(done)
      if done % t.log_every == 0 or done == t.steps:
        host = jax.device_get(sums)
        skipped = guard(host)
        sums = None
        elapsed = time.perf_counter() - tick
        tick, tick_step, steps_logged = time.perf_counter(), done, done - tick_step
        train = metrics_lib.summarize(host)
        train.update(grad_norm=float(host['grad_norm_sum'] / max(host['steps'], 1.0)),
                     lr=float(lr_at(done - 1)),
                     tokens_per_sec=steps_logged * t.batch_size * t.seq_len / elapsed)
        if t.skip_nonfinite:
          train['skipped_steps'] = skipped
        logbook.write(done, 'train', train)
        bar.set_postfix(loss=f'{train["loss"]:.4f}', tok_s=f'{train["tokens_per_sec"]:,.0f}')
      evaluated = {}
      if t.eval_every and done % t.eval_every == 0:
        guard(None if sums is None else jax.device_get(sums))
        if t.eval_batches:
          val = passes.losses(setup.evaluator, state.params, data.estimate(done))
          log_eval(done, 'val', val)
          say(f'step {done}: val loss {val["loss"]:.4f}')
        if t.select_metric:
          evaluated['validation'] = full = whole('validation')
          value = full[t.select_metric]
          if selection.improved(t.select_metric, value, best and best['value']):
            best, stale = {'step': done, 'value': value, 'metrics': full}, 0
            best_checkpoints.save(done, state, {'step': done})
          else:
            stale += 1
          stopped = bool(t.patience) and stale >= t.patience
          say(f'step {done}: {t.select_metric} {value:.4f} (best {best["value"]:.4f} at step '
              f'{best["step"]})' + (f'; stopping: no better in {stale} evaluations'
                                    if stopped else ''))
          log_eval(done, 'val_full', full)
      last = done == t.steps or stopped
      if last and t.full_eval:
        for split in data.full:
          name = 'val' if split == 'validation' else split
          full = evaluated.get(split) or whole(split)
          if split not in evaluated:
            logbook.write(done, f'{name}_full', full)
          say(f'step {done}: {name} loss over the whole split {full["loss"]:.4f} '
              f'(perplexity {full["perplexity"]:.2f}, {int(full["tokens"])} tokens)')
      if last and best is not None:
        logbook.write(done, 'best', {'at_step': best['step'], **best['metrics']})
      if (t.checkpoint_every and done % t.checkpoint_every == 0) or last or signal_name:
        pending = None if sums is None else jax.device_get(sums)
        guard(pending)
        checkpoints.save(done, state, {
            'step': done, 'data': train_batches.state(), 'best': best, 'stale': stale,
            'stopped': stopped, 'skipped': skipped,  # the pending sums hold their own
            'train_sums': pending and {k: float(v) for k, v in pending.items()}})
      if signal_name and not last:
        bar.close()  # before the message, not under the bar
        checkpoints.close()  # the checkpoint is on disk (or its error raised) before we say so
        raise Interrupted(f'{signal_name} at step {done} of {t.steps}: checkpoint written to '
                          f'{checkpoints.directory}; rerun the same command to resume')
      if stopped:
        break
  return logbook.summary()
