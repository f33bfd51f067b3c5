"""llm-jax plot: PNGs of the expected size; ROC and PR curves against scikit-learn's."""

import json
import struct

import numpy as np
import pytest
from sklearn import metrics as sk

from llm_jax import cli
from llm_jax import config as config_lib
from llm_jax.errors import UsageError
from llm_jax.evaluation import metrics, plots


def png_size(path) -> tuple[int, int]:
  with open(path, 'rb') as f:
    head = f.read(24)
  assert head[:8] == b'\x89PNG\r\n\x1a\n' and head[12:16] == b'IHDR'
  return struct.unpack('>II', head[16:24])


def fake_run(path, steps=(50, 100, 150)):
  path.mkdir()
  (path / 'config.json').write_text(config_lib.to_json(config_lib.base()))
  rows = [{'step': 0, 'split': 'val', 'loss': 4.2}]
  for s in steps:
    rows += [{'step': s, 'split': 'train', 'loss': 4 - s / 100, 'lr': 1e-3, 'accuracy': s / 200,
              'tokens_per_sec': 1000.0},
             {'step': s, 'split': 'val', 'loss': 4.1 - s / 100}]
  rows.append({'step': steps[-1], 'split': 'val_full', 'loss': 2.6, 'accuracy': 0.7})
  (path / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
  return str(path)


def test_curves_of_two_runs_make_one_png_of_the_asked_size(tmp_path, capsys):
  a, b = fake_run(tmp_path / 'a'), fake_run(tmp_path / 'b', steps=(50, 100))
  out = tmp_path / 'figs/curves.png'
  cli.main(['plot', a, b, '--metric', 'accuracy', '--x', 'tokens', '--size', '1000x700',
            '--out', str(out)])
  assert png_size(out) == (1000, 700) and out.stat().st_size > 20_000
  assert capsys.readouterr().out.strip() == str(out)
  assert not [p for p in (tmp_path / 'figs').iterdir() if p.name != 'curves.png']
  with pytest.raises(UsageError, match='no run logged bleu'):
    plots.curves([a], str(tmp_path / 'x.png'), metrics=('bleu',))
  assert not (tmp_path / 'x.png').exists()


def test_roc_and_pr_curves_equal_scikit_learns():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 2, 300)
  scores = np.round(labels * 0.3 + rng.random(300), 1)  # ties, as rounded probabilities have
  fpr, tpr = metrics.roc_curve(labels, scores)
  sk_fpr, sk_tpr, _ = sk.roc_curve(labels, scores, drop_intermediate=False)
  np.testing.assert_allclose(fpr, sk_fpr)
  np.testing.assert_allclose(tpr, sk_tpr)
  recall, precision = metrics.pr_curve(labels, scores)
  sk_precision, sk_recall, _ = sk.precision_recall_curve(labels, scores)
  # scikit-learn lists thresholds from the lowest and appends the (recall 0, precision 1) end
  np.testing.assert_allclose(recall, sk_recall[:-1][::-1])
  np.testing.assert_allclose(precision, sk_precision[:-1][::-1])
  assert abs(np.trapezoid(tpr, fpr) - metrics.roc_auc(labels, scores)) < 1e-12
