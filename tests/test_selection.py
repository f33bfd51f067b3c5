"""Model selection: the best checkpoint, early stopping, ``llm-jax eval`` and k-fold CV."""

import json

import numpy as np
import pytest

from llm_jax import cli, train, workdir
from llm_jax.data import pipeline
from llm_jax.errors import UsageError
from llm_jax.evaluation import report, selection
from llm_jax.train import crossval
from tests.test_finetune import classifier_config, labelled


def records(run_dir, split):
  lines = [json.loads(line) for line in (run_dir / 'metrics.jsonl').read_text().splitlines()]
  return [r for r in lines if r['split'] == split]


def test_improvement_direction():
  assert selection.improved('loss', 1.0, 2.0) and not selection.improved('loss', 2.0, 1.0)
  assert selection.improved('accuracy', 0.7, 0.6) and not selection.improved('f1', 0.5, 0.6)
  assert not selection.improved('accuracy', 0.6, 0.6)  # a tie keeps the earlier checkpoint
  assert not selection.improved('loss', float('nan'), None)
  assert selection.improved('roc_auc', 0.5, None)


@pytest.mark.slow
def test_early_stopping_keeps_the_best_checkpoint(labelled, tmp_path):
  run_dir = tmp_path / 'run'
  config = classifier_config(labelled, 'train.steps=400', 'train.eval_every=5',
                             'train.select_metric=accuracy', 'train.patience=2',
                             'optim.decay_steps=400')
  final = train.run(config, str(run_dir), progress=False)
  evals = records(run_dir, 'val_full')
  accuracies = [r['accuracy'] for r in evals]
  best_at = evals[int(np.argmax(accuracies))]['step']  # the first of the best
  assert final['best_at_step'] == best_at and final['best_accuracy'] == max(accuracies)
  assert final['step'] == best_at + 2 * 5 < 400  # two evaluations without a better one
  assert [p.name for p in (run_dir / 'best').iterdir() if p.name.isdigit()] == [str(best_at)]

  best = report.run(str(run_dir), checkpoint='best')
  assert best['step'] == best_at and best['accuracy'] == max(accuracies)
  latest = report.run(str(run_dir), checkpoint='latest')
  assert latest['step'] == final['step'] and latest['accuracy'] == accuracies[-1]
  assert workdir.load(str(run_dir)).step == best_at  # auto: the best where there is one

  again = train.run(config, str(run_dir), progress=False)  # a stopped run stays stopped
  assert again == final and len(records(run_dir, 'val_full')) == len(evals)


def test_a_select_metric_the_run_does_not_report_is_refused(labelled, tmp_path):
  config = classifier_config(labelled, 'train.select_metric=bleu')
  with pytest.raises(UsageError, match="select_metric='bleu' is not a validation metric"):
    train.run(config, str(tmp_path / 'run'), progress=False)


@pytest.mark.slow
def test_eval_command_prints_metrics_and_confusion(labelled, tmp_path, capsys):
  run_dir = tmp_path / 'run'
  final = train.run(classifier_config(labelled, 'train.steps=20'), str(run_dir), progress=False)
  cli.main(['eval', '--workdir', str(run_dir), '--json'])
  result = json.loads(capsys.readouterr().out)
  confusion = np.array(result['confusion'])
  assert confusion.sum() == result['examples'] == 64 and result['labels'] == ['0', '1']
  assert result['accuracy'] == pytest.approx(np.trace(confusion) / 64)
  assert result['accuracy'] == final['val_full_accuracy']
  assert result['f1'] == final['val_full_f1'] and result['loss'] == final['val_full_loss']
  cli.main(['eval', '--workdir', str(run_dir)])
  assert 'confusion (rows: true, columns: predicted)' in capsys.readouterr().out
  with pytest.raises(SystemExit):
    cli.main(['eval', '--workdir', str(run_dir), '--split', 'test'])
  assert "has no 'test' split" in capsys.readouterr().err


def test_cv_folds_are_stratified_and_partition_the_training_set():
  labels = np.array([0] * 30 + [1] * 10 + [2] * 5)
  tokens = [np.array([i]) for i in range(len(labels))]
  seen = []
  for fold in range(5):
    split = pipeline.cv_split(tokens, labels, 5, fold)
    held = [int(t[0]) for t in split['validation'][0]]
    assert sorted(held + [int(t[0]) for t in split['train'][0]]) == list(range(45))
    assert np.bincount(split['validation'][1]).tolist() == [6, 2, 1]
    seen += held
  assert sorted(seen) == list(range(45))  # every example validates exactly once


@pytest.mark.slow
def test_cv_command_runs_every_fold(labelled, tmp_path, capsys):
  config = classifier_config(labelled, 'train.steps=10', 'train.eval_every=0',
                             'optim.decay_steps=10')
  result = crossval.run(config, str(tmp_path / 'cv'), folds=2, progress=False)
  assert len(result['per_fold']) == 2
  # each fold validates on half of the 256 training rows, not on the 64 of dev.tsv
  assert [f['examples'] for f in result['per_fold']] == [128, 128]
  accuracies = [f['accuracy'] for f in result['per_fold']]
  assert result['mean']['accuracy'] == pytest.approx(np.mean(accuracies))
  assert result['std']['accuracy'] == pytest.approx(np.std(accuracies, ddof=1))
  assert json.loads((tmp_path / 'cv' / 'cv.json').read_text()) == result


def test_train_subsets_are_fixed_and_nest():
  labels = np.arange(100) % 2
  tokens = [np.array([i]) for i in range(100)]
  small, _ = pipeline.subset(tokens, labels, 10)
  large, large_labels = pipeline.subset(tokens, labels, 40)
  small_ids, large_ids = [int(t[0]) for t in small], [int(t[0]) for t in large]
  assert len(set(large_ids)) == 40 and set(small_ids) <= set(large_ids)
  assert large_labels.tolist() == [i % 2 for i in large_ids]
  assert small_ids == [int(t[0]) for t in pipeline.subset(tokens, labels, 10)[0]]
  with pytest.raises(UsageError, match='exceeds the 100 training examples'):
    pipeline.subset(tokens, labels, 101)
