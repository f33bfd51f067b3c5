"""Metrics from summed counts: the means of loss sums, and classification metrics over a
whole evaluation set, accumulated batch by batch.

``Classification`` keeps a confusion matrix and every example's class probabilities (an
eval set's worth of floats), so accuracy, precision, recall and F1 come from counts and
ROC-AUC is exact (rank-based, ties averaged) rather than binned. Padded rows of a last
partial batch are dropped by their ``weights``.
"""

from __future__ import annotations

import math

import numpy as np


def summarize(sums: dict) -> dict[str, float]:
  """Turns summed metrics into means: loss, accuracy and perplexity per counted token."""
  tokens = max(float(sums['tokens']), 1.0)
  loss = float(sums['nll_sum']) / tokens
  out = {'loss': loss, 'accuracy': float(sums['correct_sum']) / tokens,
         'perplexity': math.exp(min(loss, 700.0)), 'tokens': float(sums['tokens'])}
  if 'nsp_examples' in sums:  # next-sentence prediction beside masked LM
    pairs = max(float(sums['nsp_examples']), 1.0)
    out.update(nsp_loss=float(sums['nsp_nll_sum']) / pairs,
               nsp_accuracy=float(sums['nsp_correct_sum']) / pairs)
  return out


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
  """Area under the ROC curve of binary ``labels`` ranked by ``scores`` (Mann-Whitney U)."""
  labels = np.asarray(labels).astype(bool)
  positives, negatives = labels.sum(), (~labels).sum()
  if positives == 0 or negatives == 0:
    return float('nan')
  order = np.argsort(scores, kind='mergesort')
  sorted_scores = np.asarray(scores)[order]
  ranks = np.empty(len(scores), np.float64)
  # average ranks over ties, 1-based
  _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
  for start, count in zip(first, counts):
    ranks[order[start:start + count]] = start + (count + 1) / 2.0
  return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _ranked(labels: np.ndarray, scores: np.ndarray):
  """True and false positives counted above each distinct score, highest first."""
  order = np.argsort(-np.asarray(scores, np.float64), kind='mergesort')
  scores, labels = np.asarray(scores)[order], np.asarray(labels).astype(bool)[order]
  last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
  true_pos = np.cumsum(labels)[last_of_tie]
  return true_pos, last_of_tie + 1 - true_pos, scores[last_of_tie]


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(false positive rates, true positive rates) at every threshold, from (0, 0) to (1, 1)."""
  true_pos, false_pos, _ = _ranked(labels, scores)
  return (np.r_[0.0, false_pos / max(false_pos[-1], 1)],
          np.r_[0.0, true_pos / max(true_pos[-1], 1)])


def pr_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(recall, precision) at every threshold, highest threshold first."""
  true_pos, false_pos, _ = _ranked(labels, scores)
  return true_pos / max(true_pos[-1], 1), true_pos / (true_pos + false_pos)


class Classification:
  """Streaming metrics for ``num_classes``-way classification."""

  def __init__(self, num_classes: int):
    self.num_classes = num_classes
    self.confusion = np.zeros((num_classes, num_classes), np.int64)  # [true, predicted]
    self._labels: list[np.ndarray] = []
    self._probs: list[np.ndarray] = []

  def update(self, labels: np.ndarray, probs: np.ndarray, weights: np.ndarray | None = None):
    """Adds a batch: integer ``labels[b]``, ``probs[b, classes]``, ``weights[b]`` (0 = padding)."""
    labels, probs = np.asarray(labels), np.asarray(probs, np.float64)
    if weights is not None:
      keep = np.asarray(weights) > 0
      labels, probs = labels[keep], probs[keep]
    np.add.at(self.confusion, (labels, probs.argmax(-1)), 1)
    self._labels.append(labels)
    self._probs.append(probs)

  def examples(self) -> tuple[np.ndarray, np.ndarray]:
    """Every example added: (labels ``[n]``, probabilities ``[n, classes]``)."""
    if not self._labels:
      return np.zeros(0, np.int64), np.zeros((0, self.num_classes))
    return np.concatenate(self._labels), np.concatenate(self._probs)

  def result(self) -> dict[str, float]:
    c = self.confusion
    total = c.sum()
    true_pos = np.diag(c).astype(np.float64)
    predicted, actual = c.sum(0), c.sum(1)
    precision = np.divide(true_pos, predicted, out=np.zeros_like(true_pos), where=predicted > 0)
    recall = np.divide(true_pos, actual, out=np.zeros_like(true_pos), where=actual > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(true_pos),
                   where=precision + recall > 0)
    labels, probs = self.examples()
    out = {'accuracy': float(true_pos.sum() / max(total, 1)), 'examples': int(total),
           'precision_macro': float(precision.mean()), 'recall_macro': float(recall.mean()),
           'f1_macro': float(f1.mean())}
    if self.num_classes == 2:  # the positive class is 1
      out.update(precision=float(precision[1]), recall=float(recall[1]), f1=float(f1[1]),
                 roc_auc=roc_auc(labels == 1, probs[:, 1]))
    else:  # one-vs-rest, averaged over classes present
      aucs = [roc_auc(labels == k, probs[:, k]) for k in range(self.num_classes)]
      out['roc_auc_macro'] = float(np.nanmean(aucs)) if not np.all(np.isnan(aucs)) else \
          float('nan')
    return out
