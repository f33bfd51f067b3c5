import jax
import numpy as np
import pytest
import torch
import transformers
from transformers.models.t5.modeling_t5 import T5Attention

from llm_jax import models
from llm_jax.models import layers
from tests import hf_parity


@pytest.mark.parametrize('version', ['v1.0', 'v1.1'])
def test_t5_logits_match_transformers_both_ways(version, tmp_path):
  torch.manual_seed(0)
  config = transformers.T5Config(
      vocab_size=96, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_decoder_layers=3,
      num_heads=4, feed_forward_proj='relu' if version == 'v1.0' else 'gated-gelu',
      tie_word_embeddings=version == 'v1.0')
  hf_model = transformers.T5ForConditionalGeneration(config).eval()
  if version == 'v1.1':
    # transformers 5 builds T5 tied whatever the config says; v1.1 checkpoints hold their own
    # lm_head. Drawn at the scale v1.0's d_model**-0.5 rescaling gives, so logits stay O(1):
    # with N(0, 1) they reach ~20 and float32 alone puts both libraries ~1e-5 from float64.
    hf_model.lm_head.weight = torch.nn.Parameter(torch.randn(96, 32) * 32 ** -0.5)
  cfg, params, reloaded = hf_parity.convert_both_ways(hf_model, tmp_path)
  v1_0 = version == 'v1.0'
  assert (cfg.mlp, cfg.tie_embeddings, cfg.rescale_logits) == \
      ('relu' if v1_0 else 'geglu', v1_0, v1_0)
  ids, mask = hf_parity.padded_batch(96, pad_id=0)
  decoder_ids, decoder_mask = hf_parity.padded_batch(96, pad_id=0, seed=1)
  decoder_ids, decoder_mask = decoder_ids[::-1].copy(), decoder_mask[::-1].copy()
  ours = jax.jit(models.build(cfg).apply)({'params': params}, ids, decoder_ids, mask,
                                          decoder_mask)
  for model in (hf_model, reloaded):
    theirs = hf_parity.torch_logits(model, input_ids=ids, attention_mask=mask,
                                    decoder_input_ids=decoder_ids,
                                    decoder_attention_mask=decoder_mask)
    hf_parity.assert_close(ours, theirs, decoder_mask)
  if not v1_0:
    np.testing.assert_array_equal(params['lm_head']['kernel'].T,
                                  reloaded.lm_head.weight.detach().numpy())


@pytest.mark.parametrize('bidirectional', [True, False], ids=['encoder', 'decoder'])
def test_relative_buckets_match_transformers_at_every_distance(bidirectional):
  """Distances up to 400 (past max_distance=128): the short parity rows never reach them."""
  table = np.arange(32, dtype=np.float32)[:, None]  # the bias of a bucket is its index
  keys = np.arange(401)[None]
  queries = np.array([[0, 1, 64, 200, 400]])
  ours = layers.relative_position_bias(table, queries, keys, bidirectional=bidirectional,
                                       max_distance=128)[0, 0]
  relative = torch.from_numpy(keys - queries[0][:, None])
  theirs = T5Attention._relative_position_bucket(relative, bidirectional=bidirectional,
                                                 num_buckets=32, max_distance=128)
  np.testing.assert_array_equal(np.asarray(ours), theirs.numpy())
