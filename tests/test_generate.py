import jax
import numpy as np
import pytest

from llm_jax import parallel
from llm_jax.inference import generate
from llm_jax.models import DecoderLM, TransformerConfig


@pytest.fixture(scope='module')
def lm():
  cfg = TransformerConfig(vocab_size=40, d_model=32, num_heads=4, num_layers=2, max_len=32)
  model = DecoderLM(cfg)
  params = parallel.unbox(model.init(jax.random.key(0), np.zeros((1, 8), np.int32))['params'])
  prompt = np.array([[1, 5, 9, 2, 7], [3, 3, 8, 1, 0]], np.int32)
  return model, params, prompt


@pytest.mark.parametrize('n_new', [20, 45], ids=['within-context', 'past-context'])
def test_cached_greedy_equals_uncached_greedy(lm, n_new):
  model, params, prompt = lm
  key = jax.random.key(0)
  cached = generate.generate(model, params, prompt, n_new, key, temperature=0.0)
  uncached = generate.generate(model, params, prompt, n_new, key, temperature=0.0,
                               use_cache=False)
  assert cached.shape == (2, 5 + n_new)
  np.testing.assert_array_equal(cached, uncached)
  np.testing.assert_array_equal(cached[:, :5], prompt)


def test_cached_sampling_equals_uncached_sampling(lm):
  model, params, prompt = lm
  key = jax.random.key(3)
  a = generate.generate(model, params, prompt, 20, key, temperature=1.0, top_k=10)
  b = generate.generate(model, params, prompt, 20, key, temperature=1.0, top_k=10,
                        use_cache=False)
  np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_sampling_is_seeded_and_top_k_one_is_greedy(lm):
  model, params, prompt = lm
  greedy = generate.generate(model, params, prompt, 15, jax.random.key(0), temperature=0.0)
  top1 = generate.generate(model, params, prompt, 15, jax.random.key(1), top_k=1)
  np.testing.assert_array_equal(greedy, top1)
  tiny_p = generate.generate(model, params, prompt, 15, jax.random.key(1), top_p=1e-6)
  np.testing.assert_array_equal(greedy, tiny_p)
  a = generate.generate(model, params, prompt, 15, jax.random.key(5), temperature=1.5)
  b = generate.generate(model, params, prompt, 15, jax.random.key(5), temperature=1.5)
  c = generate.generate(model, params, prompt, 15, jax.random.key(6), temperature=1.5)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


def test_top_k_and_top_p_only_draw_allowed_tokens():
  logits = np.log(np.array([[0.5, 0.3, 0.1, 0.06, 0.04]], np.float32))
  draws = set()
  for i in range(200):
    draws.add(int(generate.sample_logits(logits, jax.random.key(i), 1.0, 2, 1.0)[0]))
  assert draws == {0, 1}
  draws = set()
  for i in range(200):
    draws.add(int(generate.sample_logits(logits, jax.random.key(i), 1.0, 0, 0.85)[0]))
  assert draws == {0, 1, 2}  # 0.5 + 0.3 < 0.85 <= 0.5 + 0.3 + 0.1


RAGGED = [np.array([4, 9, 2], np.int32), np.array([1, 5, 9, 2, 7, 3, 3], np.int32),
          np.array([8, 1, 6, 6, 2], np.int32)]


def test_ragged_batch_equals_each_prompt_alone(lm):
  """Three prompt lengths in one batch, greedy: each row equals its own unpadded decode, with
  the cache and without it (the uncached path slides each row's own window)."""
  model, params, _ = lm
  key = jax.random.key(0)
  batched = generate.complete(model, params, RAGGED, 12, key, temperature=0.0)
  alone = [generate.complete(model, params, [p], 12, key, temperature=0.0)[0] for p in RAGGED]
  uncached = generate.complete(model, params, RAGGED, 12, key, temperature=0.0,
                               use_cache=False)
  for row, single, slow in zip(batched, alone, uncached):
    assert len(row) == 12
    np.testing.assert_array_equal(row, single)
    np.testing.assert_array_equal(row, slow)


def test_a_stop_token_ends_its_row_only(lm):
  model, params, _ = lm
  key = jax.random.key(0)
  free = generate.complete(model, params, RAGGED, 12, key, temperature=0.0)
  stop = int(free[1][3])  # the fourth token row 1 draws
  cut = generate.complete(model, params, RAGGED, 12, key, temperature=0.0, stop_ids=(stop,))
  for row, whole in zip(cut, free):
    first = np.flatnonzero(whole == stop)
    expected = whole[:first[0]] if len(first) else whole
    np.testing.assert_array_equal(row, expected)
  assert len(cut[1]) <= 3 and any(len(r) == 12 for r in cut)


def test_texts_stop_at_eos_and_at_stop_strings_and_stream_the_same(lm):
  """Sampled (seeded) completions from a char tokenizer: with a character of the free run as
  EOS, each row ends before its first occurrence; a stop string cuts the text where it first
  occurs; the stream of one prompt joins to its completion (a sample depends on the batch
  it is drawn in, so alone)."""
  from llm_jax.data import tokenizers
  from llm_jax.inference import text
  model, params, _ = lm
  tokenizer = tokenizers.CharTokenizer([chr(c) for c in range(ord('a'), ord('a') + 26)] +
                                       list(' .,;:!?\n-\'0123456'))
  prompts, options = ['abc', 'hello there'], dict(max_new_tokens=20, temperature=1.0, seed=3)
  free = text.complete(model, params, tokenizer, prompts, **options)
  eos = free[1][10]
  tokenizer.special = {'eos': tokenizer.encode(eos)[0]}
  stopped = text.complete(model, params, tokenizer, prompts, **options)
  assert stopped == [f.split(eos)[0] for f in free] and len(stopped[1]) <= 10
  target = stopped[1][2:4]
  assert len(target) == 2, stopped
  cut = text.complete(model, params, tokenizer, prompts, stop=[target], **options)
  assert cut == [s[:s.find(target)] if target in s else s for s in stopped]
  alone = text.complete(model, params, tokenizer, prompts[1:], stop=[target], **options)
  assert ''.join(text.stream(model, params, tokenizer, prompts[1], stop=[target],
                             **options)) == alone[0]
