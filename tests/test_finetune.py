"""A classifier trained through the loop: pretrained body loaded by name, freezing, metrics."""

import json
import os

import jax
import numpy as np
import pytest

from llm_jax import train, workdir
from llm_jax.errors import UsageError
from llm_jax.train import checks
from tests.conftest import REPO, write_labelled

pytestmark = pytest.mark.slow  # trains workdirs end to end

WORDS = {1: 'good great fine nice lovely', 0: 'bad awful poor ugly dull'}


@pytest.fixture(scope='module')
def labelled(tmp_path_factory):
  root = tmp_path_factory.mktemp('labelled')
  write_labelled(root, WORDS, {'train': 256, 'dev': 64}, 3, ('the', 'film'))
  return root


def classifier_config(root, *overrides):
  return checks.load(os.path.join(REPO, 'configs', 'bert.py:tiny'), [
      'objective=classification', 'data.corpus=files', f'data.files.train={root}/train.tsv',
      f'data.files.validation={root}/dev.tsv', 'data.format=tsv', 'data.header=true',
      "data.labels=('0', '1')", 'data.vocab_size=320', 'model.mlm_head=false',
      'model.pooler=true', 'train.batch_size=16', 'train.seq_len=16', 'train.steps=40',
      'train.log_every=10', 'train.eval_every=20', 'train.eval_batches=2',
      'train.checkpoint_every=20', 'optim.warmup_steps=5', 'optim.decay_steps=40',
      'optim.lr=3e-3'] + list(overrides))


def test_a_classifier_learns_and_reports_every_metric(labelled, tmp_path):
  final = train.run(classifier_config(labelled), str(tmp_path / 'run'), progress=False)
  assert final['val_full_examples'] == 64
  assert final['val_full_accuracy'] > 0.9 and final['val_full_roc_auc'] > 0.9
  for key in ('val_full_f1', 'val_full_precision', 'val_full_recall', 'val_full_f1_macro'):
    assert 0.0 <= final[key] <= 1.0
  assert json.loads((tmp_path / 'run' / 'labels.json').read_text()) == ['0', '1']


def test_finetune_from_a_workdir_freezes_the_body(labelled, tmp_path):
  body = str(tmp_path / 'body')
  train.run(classifier_config(labelled, 'train.steps=20'), body, progress=False)
  head = str(tmp_path / 'head')
  train.run(classifier_config(labelled, f'finetune.pretrained={body}', 'finetune.freeze=head',
                              'model.dropout=0.0'), head, progress=False)
  before, after = workdir.load(body).params, workdir.load(head).params
  for path in ('embed', 'encoder'):
    for a, b in zip(jax.tree_util.tree_leaves(before[path]),
                    jax.tree_util.tree_leaves(after[path])):
      np.testing.assert_array_equal(a, b)  # frozen: bit-identical to the pretrained body
  assert not np.array_equal(before['classifier']['kernel'], after['classifier']['kernel'])


def test_a_checkpoint_that_does_not_fit_is_refused_by_name(labelled, tmp_path):
  body = str(tmp_path / 'body')
  train.run(classifier_config(labelled, 'train.steps=20'), body, progress=False)
  with pytest.raises(UsageError, match='encoder/block_0'):
    train.run(classifier_config(labelled, f'finetune.pretrained={body}', 'model.d_model=64'),
              str(tmp_path / 'wide'), progress=False)


def test_predict_prints_a_label_and_probability_per_text(labelled, tmp_path, capsys,
                                                         monkeypatch):
  from llm_jax import cli
  from llm_jax.workdir.checkpoints import Checkpointer
  run = str(tmp_path / 'run')
  train.run(classifier_config(labelled), run, progress=False)
  (tmp_path / 'texts.txt').write_text('lovely great film\n\nawful dull film\n')
  capsys.readouterr()
  # predicting reads the parameters alone (the frozen-leaf optimizer state stays on disk)
  monkeypatch.setattr(Checkpointer, 'restore',
                      lambda *args, **kwargs: pytest.fail('a whole train state was restored'))
  cli.main(['predict', f'--workdir={run}', '--text', 'good nice the film',
            f'--input={tmp_path / "texts.txt"}'])
  lines = [line.split('\t') for line in capsys.readouterr().out.strip().split('\n')]
  assert [line[0] for line in lines] == ['1', '1', '0']
  assert all(0.5 < float(line[1]) <= 1.0 for line in lines)
  assert lines[2][2] == 'awful dull film'
