import jax
import numpy as np
import torch
import transformers

from llm_jax import models
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
