import numpy as np
import pytest

from llm_jax.data import lm, tokenizers
from llm_jax.errors import UsageError


def test_char_tokenizer_round_trip_and_save(tmp_path):
  tok = tokenizers.CharTokenizer.from_texts(['hello world\n'])
  ids = tok.encode('hold\n')
  assert tok.decode(ids) == 'hold\n'
  tok.save(str(tmp_path / 'tok'))
  again = tokenizers.load(str(tmp_path / 'tok'))
  np.testing.assert_array_equal(again.encode('hold\n'), ids)
  with pytest.raises(UsageError, match="'z'"):
    tok.encode('z')


def test_random_windows_are_a_function_of_seed_and_step():
  ids = np.arange(1000, dtype=np.int32)
  a = lm.random_windows(ids, 8, 16, seed=3, step=5)
  b = lm.random_windows(ids, 8, 16, seed=3, step=5)
  c = lm.random_windows(ids, 8, 16, seed=3, step=6)
  np.testing.assert_array_equal(a['inputs'], b['inputs'])
  assert not np.array_equal(a['inputs'], c['inputs'])
  np.testing.assert_array_equal(a['targets'][:, :-1], a['inputs'][:, 1:])
  np.testing.assert_array_equal(a['targets'], a['inputs'] + 1)


def test_sequential_windows_predict_every_target_once():
  ids = np.arange(1, 101, dtype=np.int32)  # 99 targets: 2..100
  batches = list(lm.sequential_windows(ids, batch_size=3, seq_len=8))
  targets = np.concatenate([b['targets'][b['loss_mask'] > 0] for b in batches])
  np.testing.assert_array_equal(np.sort(targets), np.arange(2, 101))
  for b in batches:
    kept = b['loss_mask'] > 0
    np.testing.assert_array_equal(b['targets'][kept], b['inputs'][kept] + 1)


@pytest.mark.parametrize('n_ids, stride', [(101, 3), (101, 5), (12, 4), (9, 3), (6, 2)])
def test_sliding_windows_score_every_target_once_with_the_context_they_promise(n_ids, stride):
  seq_len = 8
  ids = np.arange(1, n_ids + 1, dtype=np.int32)  # ids[i] == i + 1: a token names its position
  batches = list(lm.sequential_windows(ids, batch_size=3, seq_len=seq_len, stride=stride))
  targets = np.concatenate([b['targets'][b['loss_mask'] > 0] for b in batches])
  np.testing.assert_array_equal(np.sort(targets), np.arange(2, n_ids + 1))
  rows = [(b['inputs'][r], b['loss_mask'][r]) for b in batches for r in range(3)]
  for k, (inputs, mask) in enumerate(rows):
    real = inputs > 0
    if not real.any():
      continue  # a padding row of the last batch
    start = k * stride
    np.testing.assert_array_equal(inputs[real], ids[start:start + real.sum()])  # contiguous
    scored = np.flatnonzero(mask)
    if k:  # after the first window, a scored target sees >= seq_len - stride tokens before it
      assert scored.min() >= seq_len - stride


def test_a_stride_of_seq_len_is_the_disjoint_windows():
  ids = np.arange(1, 60, dtype=np.int32)
  for a, b in zip(lm.sequential_windows(ids, 2, 8), lm.sequential_windows(ids, 2, 8, 8),
                  strict=True):
    for name in a:
      np.testing.assert_array_equal(a[name], b[name])
