import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm_jax import parallel
from llm_jax.models import DecoderLM, TransformerConfig, layers

GPT = dict(vocab_size=50, d_model=32, num_heads=4, num_layers=2, max_len=24)
LLAMA = dict(GPT, norm='rmsnorm', positions='rope', mlp='swiglu', num_kv_heads=2,
             use_bias=False, tie_embeddings=False)


def init(cfg, length=12, batch=2):
  model = DecoderLM(cfg)
  tokens = jax.random.randint(jax.random.key(0), (batch, length), 0, cfg.vocab_size)
  boxed = model.init(jax.random.key(1), tokens)['params']
  return model, parallel.unbox(boxed), boxed, tokens


@pytest.mark.slow
@pytest.mark.parametrize('family', [GPT, LLAMA], ids=['gpt', 'llama'])
def test_future_tokens_never_change_earlier_logits(family):
  model, params, _, tokens = init(TransformerConfig(**family))
  apply = jax.jit(model.apply)
  base = apply({'params': params}, tokens)
  for t in range(tokens.shape[1]):
    changed = tokens.at[:, t].set((tokens[:, t] + 7) % 50)
    logits = apply({'params': params}, changed)
    np.testing.assert_array_equal(logits[:, :t], base[:, :t])
    assert np.abs(logits[:, t:] - base[:, t:]).max() > 1e-4  # the change is seen from t on


@pytest.mark.slow
@pytest.mark.parametrize('family', [GPT, LLAMA], ids=['gpt', 'llama'])
def test_kv_cache_decoding_equals_full_forward(family):
  model, params, _, tokens = init(TransformerConfig(**family))
  full = model.apply({'params': params}, tokens)
  cache = model.init(jax.random.key(0), jnp.zeros((2, 24), jnp.int32), decode=True)['cache']
  apply = jax.jit(functools.partial(model.apply, decode=True, mutable=['cache']))
  positions = jnp.broadcast_to(jnp.arange(5), (2, 5))
  logits, state = apply({'params': params, 'cache': cache}, tokens[:, :5], positions)
  pieces = [logits]
  for t in range(5, tokens.shape[1]):
    logits, state = apply({'params': params, **state}, tokens[:, t:t + 1], jnp.full((2, 1), t))
    pieces.append(logits)
  np.testing.assert_allclose(jnp.concatenate(pieces, axis=1), full, atol=1e-5)


def test_every_parameter_has_logical_axis_names():
  _, _, boxed, _ = init(TransformerConfig(**LLAMA))
  leaves = jax.tree_util.tree_leaves(boxed, is_leaf=lambda x: isinstance(x, nn.Partitioned))
  assert leaves and all(isinstance(x, nn.Partitioned) for x in leaves)
  for leaf in leaves:
    assert len(leaf.names) == leaf.value.ndim


def test_tied_embeddings_share_one_table():
  _, params, _, _ = init(TransformerConfig(**GPT))
  assert 'lm_head' not in params and 'embed' in params
  _, untied, _, _ = init(TransformerConfig(**LLAMA))
  assert untied['lm_head']['kernel'].shape == (32, 50)


def test_segment_ids_keep_packed_documents_apart():
  model, params, _, tokens = init(TransformerConfig(**GPT))
  segments = jnp.array([[1] * 6 + [2] * 6] * 2)
  positions = jnp.array([list(range(6)) * 2] * 2)
  packed = model.apply({'params': params}, tokens, positions, segments)
  second_alone = model.apply({'params': params}, tokens[:, 6:])
  np.testing.assert_allclose(packed[:, 6:], second_alone, atol=1e-5)


def test_impossible_shapes_are_reported():
  errors = TransformerConfig(vocab_size=10, d_model=30, num_heads=4).errors()
  assert any('not divisible' in e for e in errors)
  errors = TransformerConfig(vocab_size=10, num_heads=4, num_kv_heads=3).errors()
  assert any('num_kv_heads' in e for e in errors)


def test_gelu_is_exact_gelu_and_keeps_its_dtype():
  x = np.linspace(-10, 10, 4001, dtype=np.float32)
  exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64)])
  slope = np.array([0.5 * (1 + math.erf(v / math.sqrt(2))) + v * math.exp(-v * v / 2)
                    / math.sqrt(2 * math.pi) for v in x.astype(np.float64)])
  np.testing.assert_allclose(jax.jit(layers.gelu)(x), exact, rtol=0, atol=2e-6)
  np.testing.assert_allclose(jax.jit(jax.grad(lambda v: layers.gelu(v).sum()))(x), slope,
                             rtol=0, atol=2e-6)
  assert np.abs(exact - np.asarray(jax.nn.gelu(x, approximate=True))).max() > 1e-4  # not tanh
  assert layers.gelu(jnp.ones(3, jnp.bfloat16)).dtype == jnp.bfloat16
