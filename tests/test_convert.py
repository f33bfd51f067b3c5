"""The converter's own contract: exact round trips, and every mismatch named in one error."""

import dataclasses
import json

import jax
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from llm_jax import models, parallel
from llm_jax.convert import directories, hf
from llm_jax.convert.family import ConversionError
from llm_jax.errors import UsageError
from llm_jax.models import TransformerConfig, paths

GPT = TransformerConfig(vocab_size=50, d_model=16, num_heads=2, num_layers=2, max_len=12,
                        mlp='gelu_tanh')
SMALL = dict(vocab_size=50, d_model=16, num_heads=2, num_layers=2, max_len=12)
BERT = dict(SMALL, kind='encoder', pre_norm=False, type_vocab_size=2, embed_norm=True)
# each a family's variant: untied, bare, offset positions, biased, multi-query, deeper decoder
VARIANTS = {
    'gpt2-untied': dataclasses.replace(GPT, tie_embeddings=False),
    'bert-untied-pooler': TransformerConfig(**BERT, tie_embeddings=False, pooler=True),
    'bert-bare': TransformerConfig(**BERT, mlm_head=False, pooler=True),
    'roberta': TransformerConfig(**dict(BERT, max_len=14), position_offset=2),
    't5-v1.1': TransformerConfig(**SMALL, kind='encoder_decoder', num_decoder_layers=3,
                                 head_dim=4, norm='rmsnorm', positions='relative', mlp='geglu',
                                 use_bias=False, scaled_attention=False, tie_embeddings=False),
    'llama-mqa-bias': TransformerConfig(**SMALL, num_kv_heads=1, norm='rmsnorm',
                                        positions='rope', mlp='swiglu', tie_embeddings=False),
}


def random_params(cfg):
  model = models.build(cfg)
  return parallel.unbox(model.init(jax.random.key(0), *models.sample_inputs(cfg))['params'])


@pytest.fixture
def gpt_checkpoint(tmp_path):
  """A GPT-2 checkpoint written from our own random parameters (no source config)."""
  params = random_params(GPT)
  hf_config, tensors = hf.to_hf(GPT, params)
  hf.write_hf(str(tmp_path / 'hf'), hf_config, tensors)
  return tmp_path / 'hf', params


def test_written_checkpoint_reads_back_bit_for_bit(gpt_checkpoint):
  directory, params = gpt_checkpoint
  assert json.loads((directory / 'config.json').read_text())['architectures'] == \
      ['GPT2LMHeadModel']
  cfg, back, _, dropped = hf.from_hf(str(directory))
  assert cfg == dataclasses.replace(GPT, d_ff=64) and dropped == []  # defaults spelled out
  jax.tree_util.tree_map(np.testing.assert_array_equal, back, params)


@pytest.mark.parametrize('variant', VARIANTS)
def test_every_family_variant_round_trips(variant, tmp_path):
  cfg = VARIANTS[variant]
  params = random_params(cfg)
  hf.write_hf(str(tmp_path), *hf.to_hf(cfg, params))
  back_cfg, back, _, _ = hf.from_hf(str(tmp_path))
  assert hf.canonical(back_cfg) == hf.canonical(cfg)
  jax.tree_util.tree_map(np.testing.assert_array_equal, back, params)


def test_a_scanned_model_exports_as_its_per_block_twin():
  """``scan_layers=True`` stacks the blocks; the export cuts them apart into the same tensors."""
  cfg = VARIANTS['llama-mqa-bias']
  params = random_params(cfg)
  scanned = dataclasses.replace(cfg, scan_layers=True)
  assert 'blocks' in random_params(scanned)['decoder']
  hf_config, tensors = hf.to_hf(cfg, params)
  scanned_config, scanned_tensors = hf.to_hf(scanned, paths.scan(params))
  assert scanned_config == hf_config and sorted(scanned_tensors) == sorted(tensors)
  for name, x in tensors.items():
    np.testing.assert_array_equal(scanned_tensors[name], x, err_msg=name)


def test_checkpoints_in_older_layouts_read(tmp_path):
  """bert-base-uncased style: LayerNorm gamma/beta, a stored copy of the tied decoder, the
  next-sentence head (kept: model.nsp_head) and a position-id buffer (dropped and listed)."""
  cfg = TransformerConfig(**BERT, pooler=True)
  params = random_params(cfg)
  hf_config, tensors = hf.to_hf(cfg, params)
  old = {name.replace('LayerNorm.weight', 'LayerNorm.gamma').replace('LayerNorm.bias',
                                                                     'LayerNorm.beta'): x
         for name, x in tensors.items()}
  old['cls.predictions.decoder.weight'] = tensors['bert.embeddings.word_embeddings.weight']
  nsp = np.arange(32, dtype=np.float32).reshape(2, 16)
  old['cls.seq_relationship.weight'] = nsp
  old['cls.seq_relationship.bias'] = np.array([1.0, -1.0], np.float32)
  old['bert.embeddings.position_ids'] = np.arange(12)[None]
  hf.write_hf(str(tmp_path), hf_config, old)
  back_cfg, back, _, dropped = hf.from_hf(str(tmp_path))
  assert dropped == ['bert.embeddings.position_ids'] and back_cfg.nsp_head
  np.testing.assert_array_equal(back.pop('nsp')['kernel'], nsp.T)
  jax.tree_util.tree_map(np.testing.assert_array_equal, back, params)


def test_every_mismatch_is_named_in_one_error(gpt_checkpoint):
  directory, _ = gpt_checkpoint
  path = str(directory / 'model.safetensors')
  tensors = load_file(path)
  del tensors['transformer.h.1.ln_2.bias']
  tensors['transformer.h.0.attn.rotary.weight'] = np.zeros(3, np.float32)
  tensors['transformer.wpe.weight'] = np.zeros((11, 16), np.float32)
  save_file(tensors, path, metadata={'format': 'pt'})
  with pytest.raises(ConversionError) as error:
    hf.from_hf(str(directory))
  message = str(error.value)
  assert 'missing tensors: transformer.h.1.ln_2.bias' in message
  assert 'unexpected tensors: transformer.h.0.attn.rotary.weight' in message
  assert 'wrong shapes: transformer.wpe.weight (11, 16) (expected (12, 16))' in message


def test_unknown_architectures_and_pickles_are_refused(tmp_path):
  (tmp_path / 'config.json').write_text(json.dumps({'model_type': 'bart',
                                                    'architectures': ['BartModel']}))
  with pytest.raises(ConversionError, match="unknown architecture model_type='bart'"):
    hf.from_hf(str(tmp_path))
  (tmp_path / 'config.json').write_text(json.dumps({'model_type': 'gpt2'}))
  (tmp_path / 'pytorch_model.bin').write_bytes(b'not opened')
  with pytest.raises(ConversionError, match='pickled checkpoints are never read'):
    hf.from_hf(str(tmp_path))


def test_a_model_the_family_cannot_express_is_refused():
  cfg = TransformerConfig(vocab_size=50, d_model=16, num_heads=2, num_layers=1, max_len=12,
                          use_bias=False)
  with pytest.raises(ConversionError, match=r'model\.use_bias=False would read back as True'):
    hf.to_hf(cfg, random_params(cfg))


def test_cli_errors_are_usage_errors(tmp_path):
  with pytest.raises(UsageError, match=r'has no config\.json'):
    directories.import_hf(str(tmp_path), str(tmp_path / 'out'))
