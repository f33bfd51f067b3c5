import pytest

from llm_jax.data import clean
from llm_jax.errors import UsageError


def texts(records):
  return [r['text'] for r in records]


def run(items, *specs):
  return clean.run([{'text': t} for t in items], specs)


def test_transforms_normalize_replace_and_fold():
  kept, report = run(['Ｃａｆé  Ｎｏ.１', 'ﬁne\tday!! 42'], 'nfkc', 'lower',
                     r'regex:[^a-zA-Z\s]=>', 'whitespace')
  assert texts(kept) == ['caf no', 'fine day']
  assert [r['step'] for r in report] == ['nfkc', 'lower', r'regex:[^a-zA-Z\s]=>', 'whitespace']
  assert all(r['dropped'] == 0 for r in report)
  assert report[0]['examples'] and '->' in report[0]['examples'][0]


def test_a_text_emptied_by_a_transform_is_dropped():
  kept, report = run(['123', 'ab1'], r'regex:\d=>')
  assert texts(kept) == ['ab'] and report[0]['dropped'] == 1


def test_exact_dedup_keeps_the_first_copy():
  kept, report = run(['a b', 'c d', 'a b', 'a  b'], 'dedup')
  assert texts(kept) == ['a b', 'c d', 'a  b']
  assert report[0] == {'step': 'dedup', 'in': 4, 'out': 3, 'dropped': 1, 'examples': ['a b']}
  kept, _ = run(['a b', 'c d', 'a  b'], 'whitespace', 'dedup')
  assert texts(kept) == ['a b', 'c d']


def test_near_dedup_drops_near_copies_only():
  base = 'the quick brown fox jumps over the lazy dog near the river bank today'
  near = base.replace('today', 'tonight')
  other = 'a completely different sentence about language models and their training data'
  kept, report = run([base, other, near], 'near_dedup:0.7')
  assert texts(kept) == [base, other]
  assert report[0]['examples'] == [near]
  kept, _ = run([base, other, near], 'near_dedup:0.99')
  assert len(kept) == 3


def test_length_and_character_ratio_filters():
  items = ['hi', 'hello there friend', '#### $$$ 1234 ok', 'a' * 50]
  assert texts(run(items, 'min_chars:5')[0]) == items[1:]
  assert texts(run(items, 'max_chars:20')[0]) == items[:3]
  assert texts(run(items, 'min_words:2')[0]) == items[1:3]
  assert texts(run(items, 'max_words:1')[0]) == ['hi', 'a' * 50]
  kept, report = run(items, 'min_alpha:0.5')
  assert texts(kept) == ['hi', 'hello there friend', 'a' * 50]
  assert report[0]['examples'] == ['#### $$$ 1234 ok']


@pytest.mark.parametrize('spec, message', [
    ('lowercase', 'unknown clean step'), ('regex:[a-=>', 'bad pattern'),
    ('regex:abc', 'PATTERN=>REPLACEMENT'), ('min_chars:many', 'needs a number')])
def test_bad_steps_are_refused_before_any_runs(spec, message):
  with pytest.raises(UsageError, match=message):
    run(['x'], 'lower', spec)
