"""Encoder (BERT) and encoder-decoder (T5) models, built from TransformerConfig fields alone."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm_jax import models, parallel
from llm_jax.inference import generate
from llm_jax.models import TransformerConfig

BERT = TransformerConfig(vocab_size=40, kind='encoder', d_model=32, num_heads=4, num_layers=2,
                         d_ff=48, max_len=16, pre_norm=False, norm_eps=1e-12,
                         type_vocab_size=2, embed_norm=True, pooler=True)
T5 = TransformerConfig(vocab_size=40, kind='encoder_decoder', d_model=32, num_heads=4,
                       head_dim=8, num_layers=2, num_decoder_layers=3, d_ff=48, norm='rmsnorm',
                       positions='relative', mlp='geglu', use_bias=False,
                       scaled_attention=False, tie_embeddings=False)
LLAMA_GQA = TransformerConfig(vocab_size=40, d_model=32, num_heads=4, num_kv_heads=2,
                              num_layers=2, max_len=32, norm='rmsnorm', positions='rope',
                              mlp='swiglu', use_bias=False, tie_embeddings=False)


def init(cfg):
  model = models.build(cfg)
  boxed = model.init(jax.random.key(1), *models.sample_inputs(cfg, 2, 8))['params']
  return model, parallel.unbox(boxed), boxed


@pytest.fixture(scope='module')
def bert():
  return init(BERT)


@pytest.fixture(scope='module')
def t5():
  return init(T5)


def tokens(seed, shape=(2, 8)):
  return jax.random.randint(jax.random.key(seed), shape, 1, 40)


def test_build_chooses_by_kind(bert, t5):
  assert type(bert[0]) is models.EncoderLM and type(t5[0]) is models.EncoderDecoderLM
  assert type(models.build(LLAMA_GQA)) is models.DecoderLM


@pytest.mark.parametrize('family', ['bert', 't5'])
def test_every_parameter_has_logical_axis_names(family, request):
  boxed = request.getfixturevalue(family)[2]
  leaves = jax.tree_util.tree_leaves(boxed, is_leaf=lambda x: isinstance(x, nn.Partitioned))
  assert leaves and all(isinstance(x, nn.Partitioned) for x in leaves)
  assert all(len(leaf.names) == leaf.value.ndim for leaf in leaves)


def test_encoder_is_bidirectional_and_ignores_padding(bert):
  model, params, _ = bert
  apply = jax.jit(model.apply)
  x = tokens(0)
  segments = jnp.array([[1] * 8, [1] * 5 + [0] * 3])
  base = apply({'params': params}, x, None, segments)
  assert base.shape == (2, 8, 40)
  later = x.at[:, 4].set((x[:, 4] + 3) % 40)  # a later token changes earlier outputs
  assert np.abs(apply({'params': params}, later, None, segments)[:, 0] - base[:, 0]).max() > 1e-4
  padded = x.at[1, 5:].set(7)  # what padding holds never reaches the real tokens
  out = apply({'params': params}, padded, None, segments)
  np.testing.assert_array_equal(out[1, :5], base[1, :5])
  types = apply({'params': params}, x, None, segments, token_types=jnp.ones_like(x))
  assert np.abs(types - base).max() > 1e-4


def test_encoder_exposes_hidden_states_and_pooler(bert):
  model, params, _ = bert
  hidden = model.apply({'params': params}, tokens(0), method='encode')
  pooled = model.apply({'params': params}, hidden, method='pool')
  assert hidden.shape == (2, 8, 32) and pooled.shape == (2, 32)
  assert np.abs(pooled).max() <= 1.0  # tanh
  assert set(params) == {'embed', 'encoder', 'pooler', 'mlm_transform', 'mlm_norm', 'mlm_bias'}


def test_cross_attention_sees_only_unpadded_encoder_tokens_of_its_segment(t5):
  model, params, _ = t5
  apply = jax.jit(model.apply)
  x, y = tokens(0, (2, 10)), tokens(1, (2, 6))
  padded = jnp.array([[1] * 10, [1] * 6 + [0] * 4])
  base = apply({'params': params}, x, y, padded)
  noise = apply({'params': params}, x.at[1, 6:].set(3), y, padded)
  np.testing.assert_array_equal(noise, base)  # padding of the inputs is invisible
  changed = apply({'params': params}, x.at[1, 2].set((x[1, 2] + 5) % 40), y, padded)
  assert np.abs(changed[1] - base[1]).max() > 1e-4 and np.array_equal(changed[0], base[0])
  # packed rows: decoder segment 1 reads encoder segment 1 only
  enc_seg = jnp.array([[1] * 5 + [2] * 5] * 2)
  dec_seg = jnp.array([[1] * 3 + [2] * 3] * 2)
  packed = apply({'params': params}, x, y, enc_seg, dec_seg)
  other = apply({'params': params}, x.at[:, 7].set(9), y, enc_seg, dec_seg)
  np.testing.assert_array_equal(other[:, :3], packed[:, :3])
  assert np.abs(other[:, 3:] - packed[:, 3:]).max() > 1e-4


def test_relative_positions_depend_on_distance_only(t5):
  model, params, _ = t5
  x = tokens(0, (2, 10))
  encode = jax.jit(lambda p: model.apply({'params': params}, x, p, method='encode'))
  positions = jnp.broadcast_to(jnp.arange(10), (2, 10))
  np.testing.assert_allclose(encode(positions + 17), encode(positions), atol=1e-5)
  assert 'relative_bias' in params['encoder'] and 'relative_bias' in params['decoder']
  assert 'relative_bias' not in params['encoder']['block_0']['attention']


@pytest.mark.slow
def test_t5_cached_decoding_equals_uncached(t5):
  """Sampled, not greedy: equal draws from one key need (near) equal logits at every step."""
  model, params, _ = t5
  inputs = np.asarray(tokens(2, (2, 9)))
  kw = dict(input_segment_ids=np.array([[1] * 9, [1] * 6 + [0] * 3]), temperature=1.0)
  cached = generate.generate_seq2seq(model, params, inputs, 7, jax.random.key(3), **kw)
  uncached = generate.generate_seq2seq(model, params, inputs, 7, jax.random.key(3),
                                       use_cache=False, **kw)
  assert cached.shape == (2, 7)
  np.testing.assert_array_equal(cached, uncached)


@pytest.mark.slow
@pytest.mark.parametrize('cfg', [
    dataclasses.replace(LLAMA_GQA, sliding_window=3, rope_scaling='yarn', rope_factor=4.0,
                        rope_original_max_len=8),  # Mistral, long-context LLaMA
    # Gemma 2's features, with Qwen2's q/k/v biases and Qwen3's q/k norms and head_dim (no
    # released model has all of them; the cache sees each)
    dataclasses.replace(LLAMA_GQA, norm='rmsnorm_plus_one', mlp='geglu', embed_scale=True,
                        sandwich_norm=True, sliding_window=3, global_every=2,
                        query_scale_dim=12, attention_softcap=0.5, logit_softcap=2.0,
                        qkv_bias=True, qk_norm=True, head_dim=16),
], ids=['mistral', 'gemma2_qwen'])
def test_llama_gqa_cached_decoding_equals_uncached(cfg):
  model, params, _ = init(cfg)
  assert params['decoder']['block_0']['attention']['key']['kernel'].shape == (
      32, 2, cfg.dim_per_head)
  prompt = np.asarray(tokens(4, (2, 5)))
  cached = generate.generate(model, params, prompt, 10, jax.random.key(5), temperature=1.0)
  uncached = generate.generate(model, params, prompt, 10, jax.random.key(5), temperature=1.0,
                               use_cache=False)
  np.testing.assert_array_equal(cached, uncached)
