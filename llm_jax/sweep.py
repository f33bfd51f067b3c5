"""Hyperparameter sweeps (``llm-jax sweep``): grid, random or TPE search through Optuna.

A sweep file is Python, like a config: ``get_sweep(arg=None)`` returns a dict with

  config     the config to search around, ``FILE[:ARG]``
  overrides  fixed ``field=value`` overrides of every trial (optional)
  space      ``{field: spec}``: a list of values (a grid axis, or a categorical choice),
             ``('uniform', low, high)``, ``('loguniform', low, high)`` or ``('int', low, high)``
  metric     a key of the run's final figures (``val_full_accuracy``, ``best_accuracy``,
             ``val_full_loss``, ...) and ``direction``, ``maximize`` or ``minimize``
  method     ``grid`` (every combination of the lists, in order), ``random`` or ``tpe``
  trials     the budget of random and TPE searches (a grid has as many as it has points)
  prune      optional: stop a trial whose curve (``prune_on``, a periodically evaluated
             figure such as ``val_full_accuracy`` or ``val_loss``) falls below the median of
             earlier trials at the same step (Optuna's MedianPruner after ``prune_startup``
             trials); ``seed`` seeds the samplers (default 0); ``tpe_startup`` random trials
             before TPE models the results (default 5).

Each trial is a normal workdir, ``SWEEP_DIR/trials/NNN``; the study lives in Optuna's journal
file ``SWEEP_DIR/optuna.jsonl``. A killed sweep resumes: finished and pruned trials are kept,
the trial that was running resumes its own workdir from its checkpoint with its own
parameters, and trial ``i`` is sampled with seed ``seed + i`` from the finished trials, so the
resumed sweep proposes what the uninterrupted one would; a larger ``trials`` extends it.
``summary.csv``, ``summary.md`` and ``summary.json`` list the trials sorted by the metric,
rewritten after each trial.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import sys
import time
from typing import Any

from llm_jax import config as config_lib
from llm_jax import fileio
from llm_jax.errors import UsageError

METHODS = ('grid', 'random', 'tpe')
KEYS = {'config', 'overrides', 'space', 'metric', 'direction', 'method', 'trials', 'prune',
        'prune_on', 'prune_startup', 'seed', 'tpe_startup'}
RANGES = ('uniform', 'loguniform', 'int')
SPEC = 'sweep.json'  # the sweep as first run, less its budget: a resume must be the same one
JOURNAL = 'optuna.jsonl'
DONE = ('COMPLETE', 'PRUNED')


def load(spec: str) -> dict[str, Any]:
  """A sweep file's ``get_sweep(arg)``, checked: every problem is one line naming the key."""
  path, _, arg = spec.partition(':')
  get_sweep = config_lib.file_function(path, 'get_sweep', 'sweep', 'configs/sweeps/sst2_lstm.py',
                                       'a dict (see llm_jax/sweep.py)')
  sweep = get_sweep(arg) if arg else get_sweep()
  sweep = {'overrides': (), 'trials': 0, 'prune': False, 'prune_on': '', 'prune_startup': 3,
           'seed': 0, 'tpe_startup': 5, 'method': 'tpe', 'direction': 'maximize', **sweep}
  problems = [f'{path}: unknown key {k!r}; the keys are {", ".join(sorted(KEYS))}'
              for k in sweep if k not in KEYS]
  for key in ('config', 'metric', 'space'):
    if not sweep.get(key):
      problems.append(f'{path}: {key!r} is required')
  if sweep['method'] not in METHODS:
    problems.append(f'{path}: method {sweep["method"]!r} is not one of {METHODS}')
  if sweep['direction'] not in ('maximize', 'minimize'):
    problems.append(f'{path}: direction {sweep["direction"]!r} is maximize or minimize')
  for field, values in dict(sweep.get('space') or {}).items():
    problems += [f'{path}: space[{field!r}]: {p}' for p in _space_errors(values,
                                                                          sweep['method'])]
  if sweep['method'] != 'grid' and sweep['trials'] < 1:
    problems.append(f'{path}: a {sweep["method"]} search needs a budget: trials >= 1')
  if sweep['prune'] and not (sweep['prune_on'] or sweep['metric'].startswith('best_')):
    problems.append(f'{path}: prune needs prune_on, the periodically evaluated figure to '
                    'compare (e.g. val_full_accuracy, val_loss)')
  if problems:
    raise UsageError(problems[0])
  sweep['overrides'], sweep['space'] = tuple(sweep['overrides']), dict(sweep['space'])
  sweep['prune_on'] = sweep['prune_on'] or sweep['metric'].replace('best_', 'val_full_', 1)
  return sweep


def _space_errors(values, method: str) -> list[str]:
  if isinstance(values, list):
    if not values:
      return ['an empty list of values']
    bad = [v for v in values if not isinstance(v, (bool, int, float, str))]
    return [f'values must be numbers, booleans or strings, got {bad[0]!r}'] if bad else []
  if method == 'grid':
    return [f'a grid searches lists of values, got {values!r}']
  if (not isinstance(values, tuple) or len(values) != 3 or values[0] not in RANGES
      or not values[1] < values[2] or (values[0] == 'loguniform' and values[1] <= 0)):
    return [f'{values!r}: give a list of values or (kind, low, high) with kind in {RANGES}, '
            'low < high (and low > 0 for loguniform)']
  return []


def _distributions(space: dict) -> dict:
  import optuna
  out = {}
  for field, values in space.items():
    if isinstance(values, list):
      out[field] = optuna.distributions.CategoricalDistribution(values)
    elif values[0] == 'int':
      out[field] = optuna.distributions.IntDistribution(int(values[1]), int(values[2]))
    else:
      out[field] = optuna.distributions.FloatDistribution(
          values[1], values[2], log=values[0] == 'loguniform')
  return out


def grid(space: dict) -> list[dict]:
  """Every combination of the fields' values, the first field varying slowest."""
  return [dict(zip(space, point)) for point in itertools.product(*space.values())]


def _sampler(sweep: dict, index: int):
  import optuna
  seed = sweep['seed'] + index
  if sweep['method'] == 'tpe':
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=sweep['tpe_startup'])
  return optuna.samplers.RandomSampler(seed=seed)


def _overrides(params: dict) -> list[str]:
  return [f'{k}={v if isinstance(v, str) else repr(v)}' for k, v in params.items()]


class Pruned(Exception):
  """Raised out of a trial's training loop when Optuna prunes it."""


def run(spec: str, directory: str, *, progress: bool = False) -> dict[str, Any]:
  """Runs (or resumes) the sweep ``spec`` in ``directory``; returns the summary."""
  import optuna

  from llm_jax import train
  from llm_jax.errors import Diverged
  from llm_jax.train import checks
  sweep = load(spec)
  os.makedirs(directory, exist_ok=True)
  _check_same_sweep(directory, sweep)
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  storage = optuna.storages.JournalStorage(
      optuna.storages.journal.JournalFileBackend(os.path.join(directory, JOURNAL)))
  pruner = (optuna.pruners.MedianPruner(n_startup_trials=sweep['prune_startup'])
            if sweep['prune'] else optuna.pruners.NopPruner())
  study = optuna.create_study(storage=storage, study_name='sweep', load_if_exists=True,
                              direction=sweep['direction'], pruner=pruner)
  resumed = {}  # index -> the parameters of a trial a kill left running
  for t in study.get_trials(deepcopy=False):
    if t.state.name == 'RUNNING':
      resumed[t.user_attrs['index']] = t.params
      study.tell(t.number, state=optuna.trial.TrialState.FAIL)
  distributions = _distributions(sweep['space'])
  points = grid(sweep['space']) if sweep['method'] == 'grid' else None
  count = len(points) if points is not None else sweep['trials']
  for index in range(count):
    if _finished(study, index):
      continue
    params = resumed.get(index) or (points[index] if points is not None else None)
    if params is not None:
      study.enqueue_trial(params, user_attrs={'index': index})
    study.sampler = _sampler(sweep, index)
    trial = study.ask(distributions)
    trial.set_user_attr('index', index)
    workdir = os.path.join(directory, 'trials', f'{index:03d}')
    trial.set_user_attr('workdir', os.path.relpath(workdir, directory))
    print(f'trial {index}: {" ".join(_overrides(trial.params))}', file=sys.stderr)
    config = checks.load(sweep['config'], list(sweep['overrides']) + _overrides(trial.params))

    def on_eval(step: int, figures: dict[str, float], last: bool, trial=trial) -> None:
      if sweep['prune_on'] in figures and step > 0:
        trial.report(figures[sweep['prune_on']], step)
        if not last and trial.should_prune():  # a trial that has trained to its end completes
          raise Pruned(f'step {step}')

    start = time.perf_counter()
    try:
      final = train.run(config, workdir, progress=progress, on_eval=on_eval)
    except Pruned as e:
      trial.set_user_attr('seconds', round(time.perf_counter() - start, 1))
      study.tell(trial, state=optuna.trial.TrialState.PRUNED)
      print(f'trial {index}: pruned at {e}', file=sys.stderr)
    except Diverged as e:
      trial.set_user_attr('error', str(e))
      study.tell(trial, state=optuna.trial.TrialState.FAIL)
    else:
      if sweep['metric'] not in final:
        raise UsageError(f'the sweep\'s metric {sweep["metric"]!r} is not among the run\'s '
                         f'final figures: {", ".join(sorted(final))}')
      trial.set_user_attr('seconds', round(time.perf_counter() - start, 1))
      trial.set_user_attr('steps', final['step'])
      study.tell(trial, float(final[sweep['metric']]))
      print(f'trial {index}: {sweep["metric"]} {final[sweep["metric"]]:.6g}', file=sys.stderr)
    write_summary(directory, sweep, study)
  return write_summary(directory, sweep, study)


def _finished(study, index: int) -> bool:
  """A trial of this index completed, was pruned, or failed for good (diverged)."""
  return any(t.user_attrs.get('index') == index and
             (t.state.name in DONE or 'error' in t.user_attrs)
             for t in study.get_trials(deepcopy=False))


def _check_same_sweep(directory: str, sweep: dict) -> None:
  """A directory holds one sweep: resuming with another space, metric or config is refused,
  naming what differs; only the budget (``trials``) may grow or shrink."""
  path = os.path.join(directory, SPEC)
  fixed = {k: v for k, v in sweep.items() if k != 'trials'}
  fixed = json.loads(json.dumps(fixed, default=list))  # tuples as the file holds them: lists
  if os.path.exists(path):
    with open(path) as f:
      old = json.load(f)
    old.pop('trials', None)
    differ = sorted(k for k in set(old) | set(fixed) if old.get(k) != fixed.get(k))
    if differ:
      raise UsageError(f'{directory} holds another sweep ({", ".join(differ)} differ from this '
                       'sweep file\'s); use a new --dir, or the same sweep to resume it')
  fileio.write_atomic(path, json.dumps(fixed, indent=1, sort_keys=True))


def write_summary(directory: str, sweep: dict, study) -> dict[str, Any]:
  """summary.json / .csv / .md: every decided trial, the best first."""
  rows = []
  for t in study.get_trials(deepcopy=False):
    if t.state.name not in DONE and 'error' not in t.user_attrs:
      continue
    value = t.value if t.state.name == 'COMPLETE' else (
        t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None)
    rows.append({'trial': t.user_attrs['index'], 'state': t.state.name, 'value': value,
                 'params': t.params, 'workdir': t.user_attrs.get('workdir', ''),
                 'steps': t.user_attrs.get('steps', max(t.intermediate_values, default=0)),
                 'seconds': t.user_attrs.get('seconds'), 'error': t.user_attrs.get('error', '')})
  sign = -1 if sweep['direction'] == 'maximize' else 1
  rows.sort(key=lambda r: (r['state'] != 'COMPLETE', r['value'] is None,
                           sign * (r['value'] or 0.0), r['trial']))
  summary = {'metric': sweep['metric'], 'direction': sweep['direction'],
             'method': sweep['method'], 'fields': list(sweep['space']),
             'log': {f: isinstance(v, tuple) and v[0] == 'loguniform'
                     for f, v in sweep['space'].items()}, 'trials': rows}
  fileio.write_atomic(os.path.join(directory, 'summary.json'), json.dumps(summary, indent=1))
  header = ['rank', 'trial', 'state', sweep['metric'], *sweep['space'], 'steps', 'seconds',
            'workdir']
  table = [[i + 1, r['trial'], r['state'].lower(),
            '' if r['value'] is None else f'{r["value"]:.6g}',
            *(_cell(r['params'].get(f)) for f in sweep['space']), r['steps'],
            '' if r['seconds'] is None else r['seconds'], r['workdir']]
           for i, r in enumerate(rows)]
  out = io.StringIO()
  csv.writer(out).writerows([header, *table])
  fileio.write_atomic(os.path.join(directory, 'summary.csv'), out.getvalue())
  md = ['| ' + ' | '.join(header) + ' |', '|' + ' --- |' * len(header)]
  md += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in table]
  fileio.write_atomic(os.path.join(directory, 'summary.md'), '\n'.join(md) + '\n')
  return summary


def _cell(value) -> str:
  return f'{value:.4g}' if isinstance(value, float) else str(value)


def read_summary(directory: str) -> dict[str, Any]:
  path = os.path.join(directory, 'summary.json')
  if not os.path.isfile(path):
    raise UsageError(f'{directory} has no summary.json: is it a directory of llm-jax sweep?')
  with open(path) as f:
    return json.load(f)
