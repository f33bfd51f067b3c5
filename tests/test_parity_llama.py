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


def test_llama_gqa_logits_match_transformers_both_ways(tmp_path):
  torch.manual_seed(0)
  config = transformers.LlamaConfig(vocab_size=96, hidden_size=32, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2,
                                    intermediate_size=48, max_position_embeddings=32,
                                    rope_theta=500.0)
  hf_model = transformers.LlamaForCausalLM(config).eval()
  cfg, params, reloaded = hf_parity.convert_both_ways(hf_model, tmp_path)
  assert (cfg.kv_heads, cfg.positions, cfg.rope_theta, cfg.tie_embeddings) == \
      (2, 'rope', 500.0, False)
  ids, mask = hf_parity.padded_batch(96, pad_id=0)
  ours = jax.jit(models.build(cfg).apply)({'params': params}, ids, None, mask)
  for model in (hf_model, reloaded):
    theirs = hf_parity.torch_logits(model, input_ids=ids, attention_mask=mask)
    hf_parity.assert_close(ours, theirs, mask)
  np.testing.assert_array_equal(  # the output matrix is its own, untied
      params['lm_head']['kernel'].T, reloaded.lm_head.weight.detach().numpy())


ROPE_SCALINGS = {
    'linear': {'factor': 4.0},
    'llama3': {'factor': 4.0, 'low_freq_factor': 1.0, 'high_freq_factor': 4.0,
               'original_max_position_embeddings': 8},
    'yarn': {'factor': 4.0, 'original_max_position_embeddings': 8, 'beta_fast': 8.0},
}


@pytest.mark.parametrize('kind', list(ROPE_SCALINGS))
def test_llama_rope_scaling_matches_transformers_both_ways(kind, tmp_path):
  """Scaled rotary frequencies (Llama 3.x, long-context checkpoints): pretrained at 8 positions
  so that the 10-token rows pass it, weights drawn wide (0.3) so positions move the logits."""
  torch.manual_seed(0)
  config = transformers.LlamaConfig(
      vocab_size=96, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
      num_key_value_heads=2, intermediate_size=48, max_position_embeddings=32,
      initializer_range=0.3,
      rope_parameters={'rope_type': kind, 'rope_theta': 500.0, **ROPE_SCALINGS[kind]})
  cfg, _, _ = hf_parity.assert_parity_both_ways(transformers.LlamaForCausalLM(config).eval(),
                                                tmp_path)
  assert (cfg.rope_scaling, cfg.rope_factor) == (kind, 4.0)
  written = json.loads((tmp_path / 'back' / 'config.json').read_text())
  assert written['rope_parameters']['rope_type'] == kind


def test_dynamic_rope_is_refused_by_name(tmp_path):
  config = transformers.LlamaConfig(
      vocab_size=96, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
      intermediate_size=48, rope_parameters={'rope_type': 'dynamic', 'factor': 2.0,
                                             'rope_theta': 500.0})
  transformers.LlamaForCausalLM(config).save_pretrained(tmp_path)
  with pytest.raises(UsageError, match=r"rope type 'dynamic' is not supported \(Hugging Face "
                                       'rescales it from the longest sequence'):
    hf.from_hf(str(tmp_path))
