import json

import jax
import numpy as np
import pytest
import torch
import transformers

from llm_jax import models
from llm_jax.convert import hf
from llm_jax.errors import UsageError
from tests import hf_parity


def test_qwen2_logits_match_transformers_both_ways(tmp_path):
  """Qwen2 is LLaMA with biases on q, k and v alone: the biases are random here (HF starts
  them at zero), so a bias in the wrong place or missing shows in the logits."""
  torch.manual_seed(0)
  config = transformers.Qwen2Config(vocab_size=96, hidden_size=32, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2,
                                    intermediate_size=48, max_position_embeddings=32,
                                    rope_theta=500.0, tie_word_embeddings=True)
  hf_model = transformers.Qwen2ForCausalLM(config).eval()
  with torch.no_grad():
    for name, p in hf_model.named_parameters():
      if name.endswith('bias'):
        p.normal_(0.0, 0.5)
  cfg, params, reloaded = hf_parity.convert_both_ways(hf_model, tmp_path)
  assert (cfg.qkv_bias, cfg.use_bias, cfg.kv_heads, cfg.tie_embeddings) == (True, False, 2, True)
  block = params['decoder']['block_0']
  assert 'bias' in block['attention']['query'] and 'bias' not in block['attention']['out']
  written = json.loads((tmp_path / 'back' / 'config.json').read_text())
  assert (written['model_type'], written['architectures']) == ('qwen2', ['Qwen2ForCausalLM'])
  ids, mask = hf_parity.padded_batch(96, pad_id=0)
  ours = jax.jit(models.build(cfg).apply)({'params': params}, ids, None, mask)
  for model in (hf_model, reloaded):
    theirs = hf_parity.torch_logits(model, input_ids=ids, attention_mask=mask)
    hf_parity.assert_close(ours, theirs, mask)
  np.testing.assert_array_equal(
      np.asarray(block['attention']['key']['bias']).reshape(-1),
      reloaded.model.layers[0].self_attn.k_proj.bias.detach().numpy())


def test_sliding_window_qwen2_is_refused_by_name(tmp_path):
  config = transformers.Qwen2Config(vocab_size=96, hidden_size=32, num_hidden_layers=1,
                                    num_attention_heads=4, intermediate_size=48,
                                    use_sliding_window=True, sliding_window=8)
  transformers.Qwen2ForCausalLM(config).save_pretrained(tmp_path)
  assert json.loads((tmp_path / 'config.json').read_text())['use_sliding_window']
  with pytest.raises(UsageError, match='use_sliding_window=true is not supported'):
    hf.from_hf(str(tmp_path))


def test_qwen3_logits_match_transformers_both_ways(tmp_path):
  """Qwen3: RMSNorm over each head's query and key (random scales here), head_dim on its own
  (16 with a width of 32 and 4 heads)."""
  torch.manual_seed(0)
  config = transformers.Qwen3Config(vocab_size=96, hidden_size=32, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                    intermediate_size=48, max_position_embeddings=32,
                                    rope_theta=500.0, tie_word_embeddings=False)
  hf_model = transformers.Qwen3ForCausalLM(config).eval()
  with torch.no_grad():
    for name, p in hf_model.named_parameters():
      if name.endswith(('q_norm.weight', 'k_norm.weight')):
        p.normal_(1.0, 0.5)
  cfg, params, reloaded = hf_parity.convert_both_ways(hf_model, tmp_path)
  assert (cfg.qk_norm, cfg.dim_per_head, cfg.qkv_bias) == (True, 16, False)
  written = json.loads((tmp_path / 'back' / 'config.json').read_text())
  assert (written['model_type'], written['head_dim']) == ('qwen3', 16)
  ids, mask = hf_parity.padded_batch(96, pad_id=0)
  ours = jax.jit(models.build(cfg).apply)({'params': params}, ids, None, mask)
  for model in (hf_model, reloaded):
    theirs = hf_parity.torch_logits(model, input_ids=ids, attention_mask=mask)
    hf_parity.assert_close(ours, theirs, mask)
