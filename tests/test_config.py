import json

import pytest

from llm_jax import cli
from llm_jax import config as config_lib
from llm_jax.train import checks
from tests.conftest import SHAKESPEARE


def test_recipe_matches_nanogpt_cpu_recipe():
  c = checks.load(SHAKESPEARE)
  m, t, o = c.model, c.train, c.optim
  assert (m.num_layers, m.num_heads, m.d_model, m.dropout) == (4, 4, 128, 0.0)
  assert (t.seq_len, t.batch_size, t.steps, t.eval_every, t.eval_batches) == (64, 12, 2000, 250, 20)
  assert (o.lr, o.min_lr, o.decay_steps, o.warmup_steps) == (1e-3, 1e-4, 2000, 100)
  assert (o.b2, o.weight_decay, o.clip_norm) == (0.99, 0.1, 1.0)
  gpu = checks.load(SHAKESPEARE + ':gpu')
  assert (gpu.model.num_layers, gpu.model.num_heads, gpu.model.d_model) == (6, 6, 384)
  assert (gpu.train.seq_len, gpu.train.batch_size, gpu.model.dropout) == (256, 64, 0.2)
  assert gpu.train.steps == 5000


def test_overrides_are_typed():
  c = checks.load(SHAKESPEARE, ['optim.lr=3e-4', 'model.num_layers=2', 'optim.min_lr=0',
                                    'train.async_checkpoints=false', 'model.norm=rmsnorm'])
  assert c.optim.lr == 3e-4 and c.model.num_layers == 2 and c.optim.min_lr == 0.0
  assert isinstance(c.optim.min_lr, float)
  assert c.train.async_checkpoints is False and c.model.norm == 'rmsnorm'


@pytest.mark.parametrize('override, message', [
    ('optim.lrr=1', "unknown config field 'optim.lrr'"),
    ('optimizer.lr=1', "unknown config section 'optimizer'"),
    ('model.num_layers=four', "'model.num_layers' is int"),
    ('model.d_model=130', 'not divisible by model.num_heads'),
    ('model.num_kv_heads=3', 'not a multiple of model.num_kv_heads'),
    ('train.seq_len=128', 'exceeds model.max_len'),
    ('optim.schedule=exp', "optim.schedule='exp' is not one of"),
    ('model.dropout=1.5', 'model.dropout must be in [0, 1)'),
    ('optim.warmup_steps=5000', 'optim.warmup_steps=5000'),
    ('optim.warmup_steps=2000', 'leaves no steps for the cosine decay (decay steps=2000)'),
    ('train.full_eval_stride=65', 'must be in [1, train.seq_len=64]'),
])
def test_bad_fields_fail_with_one_clear_line(override, message):
  with pytest.raises(config_lib.ConfigError) as info:
    checks.load(SHAKESPEARE, [override])
  assert message in str(info.value) and '\n' not in str(info.value)


def test_typo_inside_a_config_file_is_refused(tmp_path):
  path = tmp_path / 'bad.py'
  path.write_text('from llm_jax.config import base\n'
                  'def get_config():\n  c = base()\n  c.model.d_modle = 64\n  return c\n')
  with pytest.raises(config_lib.ConfigError, match='d_modle'):
    checks.load(str(path))


def test_cli_reports_config_errors_in_one_line_before_compiling(tmp_path, capsys):
  workdir = tmp_path / 'run'
  with pytest.raises(SystemExit) as info:
    cli.main(['train', f'--config={SHAKESPEARE}', '--config.model.d_model=130',
              f'--workdir={workdir}'])
  assert info.value.code == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and 'model.d_model=130' in err
  assert not workdir.exists()  # nothing was started


def test_resolved_config_round_trips_through_json():
  c = checks.load(SHAKESPEARE, ['optim.lr=2e-3'])
  again = config_lib.from_json(config_lib.to_json(c))
  assert again.to_dict() == c.to_dict()
  assert json.loads(config_lib.to_json(c))['optim']['lr'] == 2e-3
