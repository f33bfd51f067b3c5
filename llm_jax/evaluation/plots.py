"""Figures of runs (``llm-jax plot``), one PNG per call: training curves of one or many
workdirs, a classifier's ROC and precision-recall curves or confusion matrix, a sweep's
metric against each field it searched.

Drawn on matplotlib's ``Figure`` with its Agg canvas, never ``pyplot``: no display, no global
figure state, so it runs on a headless node and inside a sweep alike. Each file is written
beside its target and renamed into place, so a killed call leaves no half-written PNG.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from llm_jax.errors import UsageError
from llm_jax.evaluation import metrics as metrics_lib
from llm_jax.workdir import layout

KINDS = ('curves', 'roc', 'pr', 'confusion', 'sweep')
# how each logged split is drawn: train as a line, the quick estimate dashed, whole splits dotted
STYLES = {'train': dict(linestyle='-'), 'val': dict(linestyle='--'),
          'val_full': dict(linestyle=':', marker='o', markersize=4),
          'test_full': dict(linestyle='none', marker='x', markersize=7)}
TRAIN_ONLY = ('lr', 'tokens_per_sec')


def _figure(size: tuple[int, int], rows: int = 1, cols: int = 1):
  from matplotlib.figure import Figure
  figure = Figure(figsize=(size[0] / 100, size[1] / 100), dpi=100, layout='constrained')
  axes = figure.subplots(rows, cols, squeeze=False)
  return figure, list(axes.flat)


def _save(figure, out: str) -> str:
  directory = os.path.dirname(os.path.abspath(out))
  os.makedirs(directory, exist_ok=True)
  tmp = os.path.join(directory, f'.{os.path.basename(out)}.tmp.png')
  figure.savefig(tmp, dpi=100, format='png')
  os.replace(tmp, out)
  return out


def read_metrics(workdir: str) -> list[dict]:
  """A workdir's metrics.jsonl as rows (a line cut by a kill ends the record)."""
  path = os.path.join(workdir, layout.METRICS)
  if not os.path.isfile(path):
    raise UsageError(f'{workdir} has no {layout.METRICS}: is it a workdir of llm-jax train?')
  rows = []
  with open(path) as f:
    for line in f:
      try:
        rows.append(json.loads(line))
      except ValueError:
        break
  return rows


def curves(workdirs: list[str], out: str, x: str = 'step', metrics: tuple[str, ...] = (),
           size: tuple[int, int] = (1200, 800)) -> str:
  """Loss (train, the quick val estimate, whole splits), each of ``metrics``, the learning
  rate and tokens/s against ``x`` (step or tokens), one line per run and split."""
  if x not in ('step', 'tokens'):
    raise UsageError(f'--x {x!r}: plot against step or tokens')
  panels = ['loss', *metrics, *TRAIN_ONLY]
  cols = 2 if len(panels) > 2 else len(panels)
  figure, axes = _figure(size, math.ceil(len(panels) / cols), cols)
  for run, workdir in enumerate(workdirs):  # a color per run, a line style per split
    rows, name = read_metrics(workdir), os.path.basename(os.path.normpath(workdir))
    config = layout.read_config(workdir)
    per_step = config.train.batch_size * config.train.seq_len if config is not None else 1
    for panel, ax in zip(panels, axes):
      for split, style in STYLES.items():
        if panel in TRAIN_ONLY and split != 'train':
          continue
        points = [(r['step'] * (per_step if x == 'tokens' else 1), r[panel]) for r in rows
                  if r['split'] == split and panel in r]
        if points:  # a series of one or two points shows its markers
          few = {'marker': 'o'} if len(points) < 3 and 'marker' not in style else {}
          ax.plot(*zip(*points), label=f'{name}: {split}', color=f'C{run % 10}', **style,
                  **few)
  found = set()
  for panel, ax in zip(panels, axes):
    ax.set_title({'lr': 'learning rate', 'tokens_per_sec': 'training tokens/s'}.get(panel, panel))
    ax.set_xlabel('tokens' if x == 'tokens' else 'step')
    ax.set_ylabel(panel)
    ax.grid(alpha=0.3)
    if ax.lines:
      found.add(panel)
      ax.legend(fontsize=8)
  for ax in axes[len(panels):]:
    ax.set_visible(False)
  missing = [p for p in metrics if p not in found]
  if missing:
    raise UsageError(f'no run logged {", ".join(missing)}; the metrics logged are '
                     f'{", ".join(sorted(_logged(workdirs)))}')
  figure.suptitle(', '.join(os.path.basename(os.path.normpath(w)) for w in workdirs))
  return _save(figure, out)


def _logged(workdirs: list[str]) -> set[str]:
  return {k for w in workdirs for r in read_metrics(w) for k in r if k not in ('step', 'split')}


def classifier(workdir: str, out: str, kind: str, split: str = 'validation',
               checkpoint: str = 'auto', size: tuple[int, int] = (800, 700)) -> str:
  """A classifier's ROC or precision-recall curves (one-vs-rest per class; binary: of
  class 1) or its confusion matrix, over every example of ``split``."""
  from llm_jax.evaluation import report  # imports jax; curves and sweeps need none
  trained, _, found = report.scored(workdir, split, checkpoint)
  if found is None:
    raise UsageError(f'{workdir} holds a {trained.config.objective} run, not a classifier: '
                     f'--kind {kind} plots class predictions (use --kind curves)')
  labels, probs = found.examples()
  names = list(trained.label_names) or [str(i) for i in range(probs.shape[1])]
  title = f'{os.path.basename(os.path.normpath(workdir))}, {split} ({len(labels)} examples)'
  figure, (ax,) = _figure(size)
  if kind == 'confusion':
    counts = found.confusion
    image = ax.imshow(counts, cmap='Blues')
    figure.colorbar(image, ax=ax, label='examples')
    for (i, j), count in np.ndenumerate(counts):
      ax.text(j, i, str(count), ha='center', va='center', fontsize=8,
              color='white' if count > counts.max() / 2 else 'black')
    ax.set_xticks(range(len(names)), names, rotation=45, ha='right')
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel('predicted')
    ax.set_ylabel('true')
    ax.set_title(f'confusion matrix: {title}')
    return _save(figure, out)
  classes = [1] if len(names) == 2 else range(len(names))
  for c in classes:
    truth, scores = labels == c, probs[:, c]
    if kind == 'roc':
      fpr, tpr = metrics_lib.roc_curve(truth, scores)
      auc = metrics_lib.roc_auc(truth, scores)
      ax.plot(fpr, tpr, label=f'{names[c]} (AUC {auc:.4f})')
    else:
      recall, precision = metrics_lib.pr_curve(truth, scores)
      ax.plot(recall, precision, label=f'{names[c]} (base rate {truth.mean():.3f})')
  if kind == 'roc':
    ax.plot([0, 1], [0, 1], color='grey', linestyle=':', label='chance')
    ax.set_xlabel('false positive rate')
    ax.set_ylabel('true positive rate')
  else:
    ax.set_xlabel('recall')
    ax.set_ylabel('precision')
  ax.set_xlim(0, 1)
  ax.set_ylim(0, 1.02)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  ax.set_title(f'{"ROC" if kind == "roc" else "precision-recall"}: {title}')
  return _save(figure, out)


def sweep(directory: str, out: str, size: tuple[int, int] = (1200, 500)) -> str:
  """A sweep's metric against each searched field, one panel per field (log axes where the
  field was searched on a log scale); pruned trials hollow, the best starred."""
  from llm_jax import sweep as sweep_lib
  summary = sweep_lib.read_summary(directory)
  fields, metric = summary['fields'], summary['metric']
  figure, axes = _figure(size, 1, max(len(fields), 1))
  finished = [t for t in summary['trials'] if t.get('value') is not None]
  if not finished:
    raise UsageError(f'{directory}: no trial has a value of {metric} yet')
  best = summary['trials'][0] if summary['trials'][0].get('state') == 'COMPLETE' else None
  for field, ax in zip(fields, axes):
    for state, marker in (('COMPLETE', 'o'), ('PRUNED', 'o')):
      points = [(t['params'][field], t['value']) for t in finished if t['state'] == state]
      if points:
        ax.scatter(*zip(*points), label=state.lower(), marker=marker,
                   facecolors='none' if state == 'PRUNED' else None,
                   edgecolors='tab:blue')
    if best is not None:
      ax.scatter([best['params'][field]], [best['value']], marker='*', s=200, color='tab:red',
                 label=f'best ({best["value"]:.4g})', zorder=3)
    if summary['log'].get(field):
      ax.set_xscale('log')
    ax.set_xlabel(field)
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  figure.suptitle(f'{os.path.basename(os.path.normpath(directory))}: {metric} '
                  f'({summary["direction"]}) of {len(finished)} trials, {summary["method"]} search')
  return _save(figure, out)
