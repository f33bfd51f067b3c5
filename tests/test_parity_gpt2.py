import jax
import torch
import transformers

from llm_jax import models
from tests import hf_parity


def test_gpt2_logits_match_transformers_both_ways(tmp_path):
  torch.manual_seed(0)
  config = transformers.GPT2Config(vocab_size=96, n_positions=16, n_embd=32, n_layer=2,
                                   n_head=4, bos_token_id=0, eos_token_id=0)
  hf_model = transformers.GPT2LMHeadModel(config).eval()
  cfg, params, reloaded = hf_parity.convert_both_ways(hf_model, tmp_path)
  assert (cfg.kind, cfg.mlp, cfg.tie_embeddings) == ('decoder', 'gelu_tanh', True)
  ids, mask = hf_parity.padded_batch(96, pad_id=0)
  ours = jax.jit(models.build(cfg).apply)({'params': params}, ids, None, mask)
  for model in (hf_model, reloaded):
    theirs = hf_parity.torch_logits(model, input_ids=ids, attention_mask=mask)
    hf_parity.assert_close(ours, theirs, mask)
