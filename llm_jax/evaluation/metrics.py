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

  def result(self) -> dict[str, float]:
    c = self.confusion
    total = c.sum()
    true_pos = np.diag(c).astype(np.float64)
    predicted, actual = c.sum(0), c.sum(1)
    precision = np.divide(true_pos, predicted, out=np.zeros_like(true_pos), where=predicted > 0)
    recall = np.divide(true_pos, actual, out=np.zeros_like(true_pos), where=actual > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(true_pos),
                   where=precision + recall > 0)
    labels = np.concatenate(self._labels) if self._labels else np.zeros(0, np.int64)
    probs = (np.concatenate(self._probs) if self._probs else
             np.zeros((0, self.num_classes)))
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
