"""Mistral, Gemma and Gemma 2 against transformers on random weights, both directions: each
family's distinguishing feature is set so that it changes the logits (a window shorter than
the rows, random (1 + w) norm scales, soft caps that bite, a query scalar unlike head_dim)."""

import json

import torch
import transformers

from tests import hf_parity

SMALL = dict(vocab_size=96, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
             intermediate_size=48, max_position_embeddings=32, rope_theta=500.0)


def test_mistral_sliding_window_matches_transformers_both_ways(tmp_path):
  torch.manual_seed(0)
  config = transformers.MistralConfig(num_hidden_layers=2, sliding_window=4, **SMALL)
  cfg, _, _ = hf_parity.assert_parity_both_ways(
      transformers.MistralForCausalLM(config).eval(), tmp_path)
  assert (cfg.sliding_window, cfg.global_every, cfg.tie_embeddings) == (4, 0, False)
  written = json.loads((tmp_path / 'back' / 'config.json').read_text())
  assert (written['model_type'], written['sliding_window']) == ('mistral', 4)


def test_gemma_matches_transformers_both_ways(tmp_path):
  torch.manual_seed(0)
  config = transformers.GemmaConfig(num_hidden_layers=2, head_dim=12, **SMALL)
  cfg, params, _ = hf_parity.assert_parity_both_ways(
      transformers.GemmaForCausalLM(config).eval(), tmp_path, randomize=('norm.weight',))
  assert (cfg.norm, cfg.mlp, cfg.embed_scale, cfg.dim_per_head, cfg.tie_embeddings) == (
      'rmsnorm_plus_one', 'geglu', True, 12, True)
  assert 'post_attention_norm' not in params['decoder']['block_0']


def test_gemma2_matches_transformers_both_ways(tmp_path):
  """Three layers: local, global, local; weights drawn wide (0.3) so that scores and logits
  reach the curved part of caps at 0.5 and 1.0."""
  torch.manual_seed(0)
  config = transformers.Gemma2Config(
      num_hidden_layers=3, head_dim=16, sliding_window=3, query_pre_attn_scalar=24,
      attn_logit_softcapping=0.5, final_logit_softcapping=1.0, initializer_range=0.3, **SMALL)
  cfg, params, _ = hf_parity.assert_parity_both_ways(
      transformers.Gemma2ForCausalLM(config).eval(), tmp_path, randomize=('norm.weight',))
  assert (cfg.sliding_window, cfg.global_every, [cfg.window(i) for i in range(3)]) == (
      3, 2, [3, 0, 3])
  assert (cfg.query_scale_dim, cfg.attention_softcap, cfg.logit_softcap) == (24, 0.5, 1.0)
  assert {'post_attention_norm', 'post_mlp_norm'} <= set(params['decoder']['block_2'])
  written = json.loads((tmp_path / 'back' / 'config.json').read_text())
  assert written['layer_types'] == ['sliding_attention', 'full_attention', 'sliding_attention']
