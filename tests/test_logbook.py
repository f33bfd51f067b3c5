"""The logbook: Weights & Biases beside metrics.jsonl when a project is named, never needed."""

import json
import sys
import types

import pytest

from llm_jax.errors import UsageError
from llm_jax.train.logbook import Logbook


class FakeWandb(types.ModuleType):
  """What llm_jax calls of the wandb package, recorded."""

  def __init__(self):
    super().__init__('wandb')
    self.inits, self.logged, self.finished = [], [], 0

  def init(self, **kwargs):
    self.inits.append(kwargs)
    return self

  def log(self, data, step):
    self.logged.append((step, data))

  def finish(self):
    self.finished += 1


def test_a_named_project_logs_every_figure_and_resumes_under_one_id(tmp_path, monkeypatch):
  fake = FakeWandb()
  monkeypatch.setitem(sys.modules, 'wandb', fake)
  book = Logbook(str(tmp_path), -1, 'proj', {'optim': {'lr': 0.1}})
  book.write(3, 'train', {'loss': 2.5, 'lr': 0.1})
  book.write(6, 'val', {'loss': 2.7})
  book.close()
  assert fake.logged == [(3, {'train/loss': 2.5, 'train/lr': 0.1}), (6, {'val/loss': 2.7})]
  assert fake.finished == 1
  first = fake.inits[0]
  assert first['project'] == 'proj' and first['config'] == {'optim': {'lr': 0.1}}
  assert first['name'] == tmp_path.name and first['resume'] == 'allow'
  Logbook(str(tmp_path), 3, 'proj', {}).close()  # a resumed run: the same W&B run
  assert fake.inits[1]['id'] == first['id']
  # metrics.jsonl stays the record, cut back to the resumed step
  assert [json.loads(line)['step'] for line in (tmp_path / 'metrics.jsonl').open()] == [3]


def test_no_project_needs_no_wandb_and_a_missing_package_is_one_line(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, 'wandb', None)  # import wandb raises ImportError
  Logbook(str(tmp_path), -1).close()
  with pytest.raises(UsageError, match='pip install wandb'):
    Logbook(str(tmp_path), -1, 'proj')
