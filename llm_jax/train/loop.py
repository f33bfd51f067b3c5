"""The training loop: one readable function to fork, not a trainer to subclass.

Data flows one way: config -> tokens -> batches -> jitted step -> metrics and checkpoints.
The host never waits on the device inside the loop except at log, eval and checkpoint steps.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from tqdm.auto import tqdm

from llm_jax import config as config_lib
from llm_jax import models, parallel, tasks
from llm_jax import workdir as workdir_lib
from llm_jax.data import pipeline
from llm_jax.evaluation import metrics as metrics_lib
from llm_jax.evaluation import passes, selection
from llm_jax.train import checks, freeze, optim
from llm_jax.train import setup as setup_lib
from llm_jax.train.logbook import Logbook
from llm_jax.workdir import layout
from llm_jax.workdir.checkpoints import Checkpointer

# Sections that must match for a workdir's checkpoint to be resumed by a new config.
RESUME_MUST_MATCH = ('seed', 'data', 'model')


def _check_workdir(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Refuses to resume a workdir whose checkpoint was trained under another model or data."""
  old = layout.read_config(workdir)
  if old is None:
    return
  old, new = old.to_dict(), config.to_dict()
  if not tasks.get(config.objective).batchings:  # a field this task ignores
    old['data'].pop('batching', None)
    new['data'].pop('batching', None)
  differ = [section for section in RESUME_MUST_MATCH if old[section] != new[section]]
  if differ:
    raise config_lib.ConfigError(
        f'workdir {workdir} holds a run with different {", ".join(differ)} settings; '
        'use a new --workdir, or the same config to resume it')


def run(config: ml_collections.ConfigDict, workdir: str, *, progress: bool = True,
        profile: tuple[int, int] | None = None) -> dict[str, Any]:
  """Trains (or resumes) the configured model in ``workdir``; returns the final metrics.

  ``profile=(start, stop)`` writes a ``jax.profiler`` trace of those steps (host loop and
  device kernels; open it in Perfetto or TensorBoard) to the workdir's ``profile/``.
  """
  checks.validate(config)
  t, task = config.train, tasks.get(config.objective)
  os.makedirs(workdir, exist_ok=True)
  _check_workdir(workdir, config)
  data = pipeline.load(config, layout.saved_tokenizer(workdir))
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
  best_checkpoints = (Checkpointer(workdir, 1, t.async_checkpoints, best=True)
                      if t.select_metric else None)
  resuming = checkpoints.latest_step() is not None
  record = {'step': 0, 'train_sums': None, 'data': None}
  pretrained = None
  if config.finetune.pretrained and not resuming:  # checked by name before anything compiles
    pretrained = workdir_lib.pretrained_params(config.finetune.pretrained)
    models.check_pretrained(setup.abstract_state.params, pretrained)
  if resuming:
    state, record = checkpoints.restore(setup.abstract_state)
  else:
    state = setup.init()
    if pretrained is not None:
      params, report = models.load_pretrained(jax.device_get(state.params), pretrained)
      state = state.replace(params=jax.device_put(params, jax.tree_util.tree_map(
          lambda x: x.sharding, state.params)))
      print(report.summary(), file=sys.stderr)
  if task.labelled:
    trainable, total = freeze.count(state.params, config.finetune.freeze)
    print(f'trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.2f}%)',
          file=sys.stderr)
  start = record['step']
  # early stopping: the best whole-validation figures so far and evaluations since they improved
  best, stale, stopped = record.get('best'), record.get('stale', 0), record.get('stopped', False)
  logbook = Logbook(workdir, start if resuming else -1)
  lr_at = optim.schedule(config.optim, t.steps)
  train_batches = data.train(record.get('data'))

  def whole(split: str) -> dict[str, float]:
    return passes.whole_split(setup.evaluator, state.params, data.full[split](), labels)

  with parallel.activate(setup.mesh):
    if start == 0 and t.eval_every and t.eval_batches:
      logbook.write(0, 'val', passes.losses(setup.evaluator, state.params, data.estimate(0)))
    sums = (None if record['train_sums'] is None else
            {k: jnp.asarray(v, jnp.float32) for k, v in record['train_sums'].items()})
    bar = tqdm(total=t.steps, initial=start, disable=not (progress and logbook.enabled),
               dynamic_ncols=True, unit='step')
    tick, tick_step = time.perf_counter(), start

    def say(message: str) -> None:
      if not bar.disable:
        bar.write(message, file=sys.stderr)

    for step in range(start, start if stopped else t.steps):
      if profile and step == max(profile[0], start) and step < profile[1]:
        jax.profiler.start_trace(os.path.join(workdir, layout.PROFILE), create_perfetto_trace=True)
      batch = parallel.global_batch(next(train_batches), setup.data_sharding)
      state, metrics = setup.train_step(state, batch)
      sums = metrics if sums is None else jax.tree_util.tree_map(jnp.add, sums, metrics)
      done = step + 1
      if profile and done == min(profile[1], t.steps) and max(profile[0], start) < profile[1]:
        jax.block_until_ready(metrics)
        jax.profiler.stop_trace()
        say(f'step {done}: profile of steps {max(profile[0], start)}..{step} in '
            f'{os.path.join(workdir, layout.PROFILE)}')
      bar.update(1)
      if done % t.log_every == 0 or done == t.steps:
        host = jax.device_get(sums)
        sums = None
        elapsed = time.perf_counter() - tick
        tick, tick_step, steps_logged = time.perf_counter(), done, done - tick_step
        train = metrics_lib.summarize(host)
        train.update(grad_norm=float(host['grad_norm_sum'] / host['steps']),
                     lr=float(lr_at(done - 1)),
                     tokens_per_sec=steps_logged * t.batch_size * t.seq_len / elapsed)
        logbook.write(done, 'train', train)
        bar.set_postfix(loss=f'{train["loss"]:.4f}', tok_s=f'{train["tokens_per_sec"]:,.0f}')
      evaluated = {}
      if t.eval_every and done % t.eval_every == 0:
        if t.eval_batches:
          val = passes.losses(setup.evaluator, state.params, data.estimate(done))
          logbook.write(done, 'val', val)
          say(f'step {done}: val loss {val["loss"]:.4f}')
        if t.select_metric:
          evaluated['validation'] = full = whole('validation')
          logbook.write(done, 'val_full', full)
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
      if (t.checkpoint_every and done % t.checkpoint_every == 0) or last:
        pending = (None if sums is None else
                   {k: float(v) for k, v in jax.device_get(sums).items()})
        checkpoints.save(done, state, {'step': done, 'train_sums': pending,
                                       'data': train_batches.state(), 'best': best,
                                       'stale': stale, 'stopped': stopped})
      if stopped:
        break
    bar.close()
  checkpoints.close()
  if best_checkpoints is not None:
    best_checkpoints.close()
  logbook.close()
  return logbook.summary()
