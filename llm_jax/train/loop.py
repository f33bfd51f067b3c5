"""The training loop: one readable function to fork, not a trainer to subclass.

Data flows one way: config -> tokens -> batches -> jitted step -> metrics and checkpoints.
The host never waits on the device inside the loop except at log, eval and checkpoint steps.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys
import time
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from llm_jax import config as config_lib
from llm_jax import fileio, objectives, parallel, tasks
from llm_jax.data import pipeline, sources, tokenizers
from llm_jax import models
from llm_jax.models import TransformerConfig, layers
from llm_jax.train import evaluation, freeze, optim
from llm_jax.train import state as state_lib
from llm_jax.train.checkpoint import Checkpointer
from llm_jax.train.logbook import Logbook

# Sections that must match for a workdir's checkpoint to be resumed by a new config.
RESUME_MUST_MATCH = ('seed', 'data', 'model')


def train_step(state: state_lib.TrainState, batch: dict[str, jax.Array], *, model: nn.Module,
               task: tasks.Task, tx: optax.GradientTransformation, rng: jax.Array,
               microbatches: int = 1, freeze_spec: str = 'all'):
  """One optimizer update; its randomness is a function of the step, for exact resumes.

  With ``microbatches`` > 1 the batch is cut into that many slices whose gradients are
  summed in a ``lax.scan`` before the one update. Each slice's mean-loss gradient is
  weighted by the tokens it counted, so the sum is the gradient of the whole batch's mean:
  the update equals one step on the whole batch, in a fraction of the activation memory.
  """
  step_rng = jax.random.fold_in(rng, state.step)

  def grads_of(batch, rng):
    (_, metrics), grads = jax.value_and_grad(
        lambda params: task(model, params, batch, rng, train=True),
        has_aux=True)(state.params)
    return grads, metrics

  if microbatches == 1:
    grads, metrics = grads_of(batch, step_rng)
  else:
    # slice j takes rows j, j + k, ...: each device already holds its share of every slice
    slices = jax.tree_util.tree_map(
        lambda x: x.reshape(-1, microbatches, *x.shape[1:]).swapaxes(0, 1), batch)

    def accumulate(carry, xs):
      micro, i = xs
      grads, metrics = grads_of(micro, jax.random.fold_in(step_rng, i))
      weighted = jax.tree_util.tree_map(lambda g: g * metrics['tokens'], grads)
      return jax.tree_util.tree_map(jnp.add, carry, (weighted, metrics)), None

    first = jax.tree_util.tree_map(lambda x: x[0], slices)
    zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype),
                                   jax.eval_shape(grads_of, first, step_rng))
    (grad_sum, metrics), _ = jax.lax.scan(accumulate, zeros,
                                          (slices, jnp.arange(microbatches)))
    grads = jax.tree_util.tree_map(lambda g: g / jnp.maximum(metrics['tokens'], 1.0), grad_sum)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  # over trainable leaves only: reading frozen gradients would make XLA compute them
  metrics['grad_norm_sum'] = optax.global_norm(freeze.trainable_only(grads, freeze_spec))
  metrics['steps'] = jnp.ones((), jnp.float32)
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics


def eval_step(params, batch: dict[str, jax.Array], *, model: nn.Module, task: tasks.Task,
              rng: jax.Array) -> dict[str, jax.Array]:
  """Summed metrics of one batch; an objective's own randomness (masking) is fixed."""
  return task(model, params, batch, rng, train=False)[1]


def _check_workdir(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Refuses to resume a workdir whose checkpoint was trained under another model or data."""
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    return
  with open(path) as f:
    old = config_lib.from_json(f.read())
  old, new = old.to_dict(), config.to_dict()
  differ = [section for section in RESUME_MUST_MATCH if old[section] != new[section]]
  if differ:
    raise config_lib.ConfigError(
        f'workdir {workdir} holds a run with different {", ".join(differ)} settings; '
        'use a new --workdir, or the same config to resume it')


@dataclasses.dataclass
class Setup:
  """What a config compiles to: the model, its mesh, and the jitted, sharded steps."""

  model: nn.Module
  mesh: jax.sharding.Mesh
  abstract_state: state_lib.TrainState
  init: Callable[[], state_lib.TrainState]
  train_step: Callable
  eval_step: Callable
  data_sharding: NamedSharding
  predict_step: Callable | None = None  # classifiers: (params, batch) -> class probabilities


def build(config: ml_collections.ConfigDict, model_cfg: TransformerConfig,
          special: Mapping[str, int] | None = None, num_labels: int = 0) -> Setup:
  """Builds model, optimizer, mesh and the jitted steps (shared by ``run`` and ``bench``).

  ``special`` is the tokenizer's special-token map, which objectives such as masked LM need;
  ``num_labels`` sizes a classifier's head (objective ``classification``), whose optimizer
  trains only what ``finetune.freeze`` leaves trainable.
  """
  t, f = config.train, config.finetune
  # the backend may be asked only now, after jax.distributed has started (config.validate
  # checked the rest)
  problems = [] if model_cfg.kind == 'lstm' else layers.attention_errors(
      model_cfg.attention, model_cfg.dtype, jax.default_backend())
  if problems:
    raise config_lib.ConfigError(problems[0])
  mesh = parallel.make_mesh(config.parallel)
  tx = optim.make(config.optim, t.steps)
  freeze_spec = 'all'
  if config.objective == 'classification':
    model = models.build_classifier(
        model_cfg, num_labels, pooling=f.pooling, head_dropout=f.head_dropout,
        use_pooler=None if f.pooler == 'auto' else f.pooler == 'yes', lora=lora_config(config))
    tx, freeze_spec = freeze.wrap(tx, f.freeze, f.layer_decay), f.freeze
  else:
    model = models.build(model_cfg)
  sample = models.sample_inputs(model_cfg, 1, t.seq_len)
  abstract_state, state_shardings = state_lib.abstract(model, tx, sample, mesh)
  data_sharding = parallel.batch_sharding(mesh)
  replicated = NamedSharding(mesh, PartitionSpec())
  init_key, step_key, eval_key = jax.random.split(jax.random.key(config.seed), 3)
  task = tasks.bind(config.objective, model_cfg.vocab_size, special or {})
  step_fn = jax.jit(functools.partial(train_step, model=model, task=task, tx=tx, rng=step_key,
                                      microbatches=t.microbatches, freeze_spec=freeze_spec),
                    in_shardings=(state_shardings, data_sharding),
                    out_shardings=(state_shardings, replicated), donate_argnums=0)
  eval_fn = jax.jit(functools.partial(eval_step, model=model, task=task, rng=eval_key),
                    in_shardings=(state_shardings.params, data_sharding),
                    out_shardings=replicated)
  predict_fn = None
  if config.objective == 'classification':
    predict_fn = jax.jit(
        lambda params, batch: objectives.predictions(tasks.classifier_logits(model, params, batch)),
        in_shardings=(state_shardings.params, data_sharding), out_shardings=replicated)
  return Setup(model, mesh, abstract_state,
               lambda: state_lib.create(model, tx, init_key, sample, mesh),
               step_fn, eval_fn, data_sharding, predict_fn)


def lora_config(config: ml_collections.ConfigDict) -> models.LoraConfig | None:
  f = config.finetune
  return (models.LoraConfig(rank=f.lora_rank, alpha=f.lora_alpha, dropout=f.lora_dropout,
                            targets=tuple(f.lora_targets)) if f.lora_rank else None)


def label_count(config: ml_collections.ConfigDict, label_names: tuple[str, ...]) -> int:
  if config.data.regression:
    return 1
  return config.finetune.num_labels or len(label_names)


def load_data(config: ml_collections.ConfigDict,
              workdir: str | None = None) -> pipeline.LMData | pipeline.LabelledData:
  """The run's data; a workdir's saved tokenizer wins, so a resumed run encodes the same.

  With several processes, process 0 prepares the dataset while the others wait, so that no
  two write the same cache.
  """
  if jax.process_count() > 1:
    if jax.process_index() == 0:
      sources.prepare(config.data)
    multihost_utils.sync_global_devices('llm_jax: data prepared')
  saved = os.path.join(workdir, 'tokenizer') if workdir else None
  tokenizer = (tokenizers.load(saved) if saved and os.path.exists(os.path.join(saved, 'spec.json'))
               else None)
  if config.objective == 'classification':
    return pipeline.labelled_data(config, tokenizer, jax.process_index(), jax.process_count())
  return pipeline.lm_data(config, tokenizer, jax.process_index(), jax.process_count())


def run(config: ml_collections.ConfigDict, workdir: str, *, progress: bool = True,
        profile: tuple[int, int] | None = None) -> dict[str, Any]:
  """Trains (or resumes) the configured model in ``workdir``; returns the final metrics.

  ``profile=(start, stop)`` writes a ``jax.profiler`` trace of those steps (host loop and
  device kernels; open it in Perfetto or TensorBoard) to ``WORKDIR/profile``.
  """
  config_lib.validate(config)
  t = config.train
  os.makedirs(workdir, exist_ok=True)
  _check_workdir(workdir, config)
  data = load_data(config, workdir)
  model_cfg = config_lib.model_config(config, data.tokenizer.vocab_size)
  if model_cfg.vocab_size < data.tokenizer.vocab_size:
    raise config_lib.ConfigError(
        f'model.vocab_size={model_cfg.vocab_size} is smaller than the tokenizer\'s '
        f'{data.tokenizer.vocab_size}; set it to 0 (automatic) or to at least that')
  if jax.process_index() == 0:
    fileio.write_atomic(os.path.join(workdir, 'config.json'), config_lib.to_json(config))
    data.tokenizer.save(os.path.join(workdir, 'tokenizer'))
    fileio.write_atomic(os.path.join(workdir, 'clean_report.json'),
                        json.dumps(data.clean_report, indent=1))
    if hasattr(data, 'label_names'):
      fileio.write_atomic(os.path.join(workdir, 'labels.json'), json.dumps(data.label_names))

  labels = label_count(config, getattr(data, 'label_names', ()))
  evaluation.check_select_metric(t.select_metric, config.objective, labels)
  setup = build(config, model_cfg, data.tokenizer.special, labels)
  checkpoints = Checkpointer(workdir, t.keep_checkpoints, t.async_checkpoints)
  best_checkpoints = (Checkpointer(workdir, 1, t.async_checkpoints, kind='best')
                      if t.select_metric else None)
  resuming = checkpoints.latest_step() is not None
  record = {'step': 0, 'train_sums': None, 'data': None}
  pretrained = None
  if config.finetune.pretrained and not resuming:  # checked by name before anything compiles
    from llm_jax import workdir as workdir_lib  # late: it rebuilds runs through this module
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
  if config.objective == 'classification':
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
    return evaluation.whole_split(setup, state.params, data.full[split](), labels)

  with parallel.activate(setup.mesh):
    if start == 0 and t.eval_every and t.eval_batches:
      logbook.write(0, 'val', evaluation.losses(setup, state.params, data.estimate(0)))
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
        jax.profiler.start_trace(os.path.join(workdir, 'profile'), create_perfetto_trace=True)
      batch = parallel.global_batch(next(train_batches), setup.data_sharding)
      state, metrics = setup.train_step(state, batch)
      sums = metrics if sums is None else jax.tree_util.tree_map(jnp.add, sums, metrics)
      done = step + 1
      if profile and done == min(profile[1], t.steps) and max(profile[0], start) < profile[1]:
        jax.block_until_ready(metrics)
        jax.profiler.stop_trace()
        say(f'step {done}: profile of steps {max(profile[0], start)}..{step} in '
            f'{os.path.join(workdir, "profile")}')
      bar.update(1)
      if done % t.log_every == 0 or done == t.steps:
        host = jax.device_get(sums)
        sums = None
        elapsed = time.perf_counter() - tick
        tick, tick_step, steps_logged = time.perf_counter(), done, done - tick_step
        train = objectives.summarize(host)
        train.update(grad_norm=float(host['grad_norm_sum'] / host['steps']),
                     lr=float(lr_at(done - 1)),
                     tokens_per_sec=steps_logged * t.batch_size * t.seq_len / elapsed)
        logbook.write(done, 'train', train)
        bar.set_postfix(loss=f'{train["loss"]:.4f}', tok_s=f'{train["tokens_per_sec"]:,.0f}')
      evaluated = {}
      if t.eval_every and done % t.eval_every == 0:
        if t.eval_batches:
          val = evaluation.losses(setup, state.params, data.estimate(done))
          logbook.write(done, 'val', val)
          say(f'step {done}: val loss {val["loss"]:.4f}')
        if t.select_metric:
          evaluated['validation'] = full = whole('validation')
          logbook.write(done, 'val_full', full)
          value = full[t.select_metric]
          if evaluation.improved(t.select_metric, value, best and best['value']):
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
