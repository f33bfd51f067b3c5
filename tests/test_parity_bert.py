import jax
import numpy as np
import pytest
import torch
import transformers

from llm_jax import models
from tests import hf_parity

FAMILIES = {
    'bert': (transformers.BertConfig, transformers.BertForMaskedLM, 0),
    'roberta': (transformers.RobertaConfig, transformers.RobertaForMaskedLM, 1),
}


@pytest.mark.parametrize('family', FAMILIES)
def test_masked_lm_logits_match_transformers_both_ways(family, tmp_path):
  config_class, model_class, pad_id = FAMILIES[family]
  torch.manual_seed(0)
  config = config_class(vocab_size=96, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=48,
                        max_position_embeddings=20, type_vocab_size=2, pad_token_id=pad_id)
  hf_model = model_class(config).eval()
  cfg, params, reloaded = hf_parity.convert_both_ways(hf_model, tmp_path)
  assert (cfg.kind, cfg.pre_norm, cfg.position_offset) == \
      ('encoder', False, 2 if family == 'roberta' else 0)
  ids, mask = hf_parity.padded_batch(96, pad_id)
  types = np.random.default_rng(1).integers(0, 2, ids.shape)
  ours = jax.jit(models.build(cfg).apply)({'params': params}, ids, None, mask,
                                          token_types=types)
  for model in (hf_model, reloaded):
    theirs = hf_parity.torch_logits(model, input_ids=ids, attention_mask=mask,
                                    token_type_ids=types)
    hf_parity.assert_close(ours, theirs, mask)
