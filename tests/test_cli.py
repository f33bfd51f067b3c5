import json

import pytest

from llm_jax import cli
from llm_jax import config as config_lib
from llm_jax.models import TransformerConfig
from llm_jax.perf import bench
from llm_jax.train import checks
from tests.conftest import SHAKESPEARE, TINY


@pytest.mark.slow
def test_train_then_generate_from_the_command_line(tmp_path, capsys):
  workdir = str(tmp_path / 'run')
  cli.main(['train', f'--config={SHAKESPEARE}', f'--workdir={workdir}',
            '--config.optim.lr=3e-3'] + [f'--config.{o}' for o in TINY])
  assert json.loads(capsys.readouterr().out)['step'] == 12
  with open(f'{workdir}/config.json') as f:
    saved = config_lib.from_json(f.read())
  assert saved.optim.lr == 3e-3
  cli.main(['generate', f'--workdir={workdir}', '--prompt=ROMEO:', '--max-new-tokens=40',
            '--top-k=5'])
  out = capsys.readouterr().out
  assert out.startswith('ROMEO:') and len(out.rstrip('\n')) >= len('ROMEO:') + 30


def test_generate_refuses_an_empty_workdir(tmp_path, capsys):
  with pytest.raises(SystemExit) as info:
    cli.main(['generate', f'--workdir={tmp_path}'])
  assert info.value.code == 2
  assert 'config.json' in capsys.readouterr().err


def test_bench_weights_dtype_without_generate_is_one_line(capsys):
  with pytest.raises(SystemExit) as info:
    cli.main(['bench', f'--config={SHAKESPEARE}', '--weights-dtype=bfloat16'])
  assert info.value.code == 2
  assert '--weights-dtype applies to decoding: add --generate' in capsys.readouterr().err


def test_flops_per_token_is_nanogpts_formula():
  cfg = TransformerConfig(vocab_size=65, d_model=128, num_heads=4, num_layers=4)
  assert bench.flops_per_token(cfg, 64, 1000) == 6 * 1000 + 12 * 4 * 4 * 32 * 64


@pytest.mark.slow
def test_bench_reports_speed_and_mfu_beside_hugging_face(capsys):
  config = checks.load(SHAKESPEARE, TINY)
  results = bench.run(config, steps=3)
  ours, hf = results['llm_jax'], results['hf_gpt2_torch']
  assert results['matmul_peak_flops'] > 1e9
  for r in (ours, hf):
    assert r['step_s'] > 0 and r['tokens_per_s'] > 0 and 0 < r['mfu'] < 2
  assert 'MFU' in capsys.readouterr().out
