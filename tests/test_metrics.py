import numpy as np
import pytest
from sklearn import metrics as sk

from llm_jax.evaluation import metrics


@pytest.mark.parametrize('classes', [2, 4])
def test_streaming_metrics_equal_scikit_learn(classes):
  rng = np.random.default_rng(classes)
  labels = rng.integers(0, classes, 500)
  logits = rng.normal(size=(500, classes)) + 0.8 * np.eye(classes)[labels]
  logits[::7] = np.round(logits[::7])  # ties in the scores
  probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  m = metrics.Classification(classes)
  for start in range(0, 500, 64):  # batches, the last one padded as an eval loader pads it
    lab, pr = labels[start:start + 64], probs[start:start + 64]
    weights = np.ones(64)
    weights[len(lab):] = 0
    pad = 64 - len(lab)
    m.update(np.pad(lab, (0, pad)), np.pad(pr, ((0, pad), (0, 0))), weights)
  got = m.result()
  predicted = probs.argmax(-1)
  assert got['examples'] == 500
  assert got['accuracy'] == pytest.approx(sk.accuracy_score(labels, predicted))
  assert got['f1_macro'] == pytest.approx(sk.f1_score(labels, predicted, average='macro'))
  assert got['precision_macro'] == pytest.approx(
      sk.precision_score(labels, predicted, average='macro', zero_division=0))
  assert got['recall_macro'] == pytest.approx(sk.recall_score(labels, predicted, average='macro'))
  np.testing.assert_array_equal(m.confusion, sk.confusion_matrix(labels, predicted))
  if classes == 2:
    assert got['f1'] == pytest.approx(sk.f1_score(labels, predicted))
    assert got['precision'] == pytest.approx(sk.precision_score(labels, predicted))
    assert got['recall'] == pytest.approx(sk.recall_score(labels, predicted))
    assert got['roc_auc'] == pytest.approx(sk.roc_auc_score(labels, probs[:, 1]))
  else:
    assert got['roc_auc_macro'] == pytest.approx(
        sk.roc_auc_score(labels, probs, multi_class='ovr', average='macro'))
