"""What a config compiles to for training: the model, its mesh, the optimizer, and the
jitted, sharded train and eval steps (shared by the loop, ``llm-jax bench`` and tests)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.sharding import NamedSharding, PartitionSpec

from llm_jax import config as config_lib
from llm_jax import models, parallel, tasks
from llm_jax.evaluation import passes
from llm_jax.models import TransformerConfig, layers
from llm_jax.train import freeze, optim
from llm_jax.train import state as state_lib


def train_step(state: state_lib.TrainState, batch: dict[str, jax.Array], *, model: nn.Module,
               loss: tasks.Loss, tx: optax.GradientTransformation, rng: jax.Array,
               microbatches: int = 1, freeze_spec: str = 'all'):
  """One optimizer update; its randomness is a function of the step, for exact resumes.

  With ``microbatches`` > 1 the batch is cut into that many slices whose gradients are
  summed in a ``lax.scan`` before the one update. Each slice's mean-loss gradient is
  weighted by the tokens it counted, so the sum is the gradient of the whole batch's mean:
  the update equals one step on the whole batch, in a fraction of the activation memory.
  """
  step_rng = jax.random.fold_in(rng, state.step)
  carried = isinstance(state, state_lib.CarriedTrainState)

  def grads_of(batch, rng):
    (_, metrics), grads = jax.value_and_grad(
        lambda params: loss(model, params, batch, rng, train=True),
        has_aux=True)(state.params)
    return grads, metrics

  end = None
  if carried:  # truncated BPTT: from the state the last batch ended in (microbatches: 1)
    (_, (metrics, end)), grads = jax.value_and_grad(
        lambda params: loss(model, params, batch, state.carry, step_rng, train=True),
        has_aux=True)(state.params)
  elif microbatches == 1:
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
  grad_norm = optax.tree.norm(freeze.trainable_only(grads, freeze_spec))
  metrics['grad_norm_sum'] = grad_norm
  metrics['steps'] = jnp.ones((), jnp.float32)
  return _unless_nonfinite(state, params, opt_state, metrics, grad_norm, end)


NOT_SKIPPED = 2.0 ** 31  # the ``first_skipped_min`` of an interval without a skipped step


def _unless_nonfinite(state, params, opt_state, metrics, grad_norm, carry=None):
  """The update (and the carried state, if any), or, where the loss or the gradient is not
  finite, the state as it was.

  So no parameter ever becomes NaN: the loop reads the counts below at its next log, eval or
  checkpoint and stops there (``train.skip_nonfinite``), before anything is saved. A skipped
  step's own figures are left out of the sums, so the logged loss stays that of the applied
  steps. ``*_min`` metrics accumulate by minimum (``accumulate``), the rest by sum.
  """
  loss_ok = jnp.isfinite(metrics['nll_sum'])
  grads_ok = jnp.isfinite(grad_norm)
  ok = loss_ok & grads_ok
  kept = jax.tree_util.tree_map(lambda new, old: jnp.where(ok, new, old),
                                (params, opt_state), (state.params, state.opt_state))
  metrics = {k: jnp.where(ok, v, jnp.zeros_like(v)) for k, v in metrics.items()}
  metrics.update(skipped=1.0 - ok, nonfinite_loss=1.0 - loss_ok, nonfinite_grad=1.0 - grads_ok,
                 first_skipped_min=jnp.where(ok, NOT_SKIPPED, state.step.astype(jnp.float32)))
  if carry is not None:
    state = state.replace(carry=jax.tree_util.tree_map(
        lambda new, old: jnp.where(ok, new, old), carry, state.carry))
  return state.replace(step=state.step + 1, params=kept[0], opt_state=kept[1]), metrics


def accumulate(sums: dict | None, metrics: dict) -> dict:
  """Adds a step's metrics to the interval's sums (minimum for ``*_min``)."""
  return metrics if sums is None else _add_metrics(sums, metrics)


@jax.jit
def _add_metrics(sums: dict, metrics: dict) -> dict:
  """One dispatch for all the metrics: added one by one, eagerly, they cost the training loop
  3 ms of Python a step (nine metrics), 5% of the Shakespeare step, on cores the step needs."""
  return {k: (jnp.minimum if k.endswith('_min') else jnp.add)(sums[k], v)
          for k, v in metrics.items()}


@dataclasses.dataclass
class Setup:
  """The model, its mesh, the state's layout and the compiled steps of one config."""

  model: nn.Module
  mesh: jax.sharding.Mesh
  abstract_state: state_lib.TrainState
  init: Callable[[], state_lib.TrainState]
  train_step: Callable
  evaluator: passes.Evaluator
  data_sharding: NamedSharding  # of a training batch: rows over the data-parallel axes


def build(config: ml_collections.ConfigDict, model_cfg: TransformerConfig,
          special: Mapping[str, int] | None = None,
          label_names: tuple[str, ...] = ()) -> Setup:
  """``special`` is the tokenizer's special-token map, which objectives such as masked LM
  need; ``label_names`` size a classifier's head. A finetuning task's optimizer trains only
  what ``finetune.freeze`` leaves trainable."""
  t, f = config.train, config.finetune
  task = tasks.get(config.objective)
  # the backend may be asked only now, after jax.distributed has started
  problems = [] if model_cfg.kind in ('lstm', 'mlp') else layers.attention_errors(
      model_cfg.attention, model_cfg.dtype, jax.default_backend())
  if problems:
    raise config_lib.ConfigError(problems[0])
  mesh = parallel.make_mesh(config.parallel)
  tx = optim.make(config.optim, t.steps)
  freeze_spec = 'all'
  if task.finetunes:
    tx = freeze.wrap(tx, f.freeze, f.layer_decay, scanned=model_cfg.scan_layers)
    freeze_spec = f.freeze
  model = task.model(model_cfg, config, label_names)
  sample = models.sample_inputs(model_cfg, 1, t.seq_len)
  carried = task.carries(config)
  carry = functools.partial(models.lstm.zero_carry, model_cfg, t.batch_size) if carried else None
  abstract_state, state_shardings = state_lib.abstract(model, tx, sample, mesh, carry)
  data_sharding = parallel.batch_sharding(mesh)
  replicated = NamedSharding(mesh, PartitionSpec())
  keys = passes.run_keys(config.seed)
  loss = task.bind(model_cfg.vocab_size, special or {}, config)
  step_fn = jax.jit(functools.partial(train_step, model=model, loss=loss, tx=tx, rng=keys.step,
                                      microbatches=t.microbatches, freeze_spec=freeze_spec),
                    in_shardings=(state_shardings, data_sharding),
                    out_shardings=(state_shardings, replicated), donate_argnums=0)
  evaluator = passes.evaluator(model, task, loss, mesh, state_shardings.params, keys.eval,
                               carried)
  return Setup(model, mesh, abstract_state,
               lambda: state_lib.create(model, tx, keys.init, sample, mesh, carry), step_fn,
               evaluator, data_sharding)
