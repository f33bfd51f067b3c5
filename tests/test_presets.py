"""Presets: every variant loads and validates; standard sizes have Hugging Face's parameter
counts (our shapes by eval_shape, theirs from configs written independently here, built on
PyTorch's meta device: nothing is allocated)."""

import os

import pytest
import torch
import transformers

from llm_jax import config as config_lib
from llm_jax.convert import hf
from llm_jax.train import checks
from tests.conftest import REPO

STANDARD = {
    'gpt.py:gpt2': lambda: transformers.GPT2LMHeadModel(transformers.GPT2Config()),
    'bert.py:base': lambda: transformers.BertForMaskedLM(transformers.BertConfig()),
    't5.py:small': lambda: transformers.T5ForConditionalGeneration(transformers.T5Config()),
    't5.py:base': lambda: transformers.T5ForConditionalGeneration(transformers.T5Config(
        d_model=768, d_ff=3072, num_layers=12, num_heads=12)),
    'llama.py:100m': lambda: transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=32000, hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
        num_attention_heads=12, num_key_value_heads=4, max_position_embeddings=2048,
        tie_word_embeddings=True)),
    'llama.py:1b': lambda: transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
        num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048)),
}
TINY = ['gpt.py:tiny', 'bert.py:tiny', 't5.py:tiny', 'llama.py:tiny']


def load(spec, vocab_size=1000):
  config = checks.load(os.path.join(REPO, 'configs', spec))
  return config, config_lib.model_config(config, vocab_size)


@pytest.mark.parametrize('spec', STANDARD)
def test_standard_sizes_count_what_transformers_counts(spec):
  _, cfg = load(spec)
  ours = sum(x.size for x in hf.abstract_params(cfg).values())
  with torch.device('meta'):
    theirs = sum(p.numel() for p in STANDARD[spec]().parameters())
  assert ours == theirs


@pytest.mark.parametrize('spec', TINY)
def test_tiny_presets_validate(spec):
  config, cfg = load(spec)
  # the vocabulary is the tokenizer's, plus T5's 100 sentinel ids
  assert not cfg.errors() and cfg.vocab_size == (1100 if spec.startswith('t5') else 1000)
  assert config.objective == {'gpt': 'causal_lm', 'bert': 'masked_lm', 't5': 'span_corruption',
                              'llama': 'causal_lm'}[spec.split('.')[0]]
