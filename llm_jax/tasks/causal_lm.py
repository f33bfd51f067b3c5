"""Next-token prediction: a decoder on nanoGPT's windows or packed documents, or an LSTM on
truncated BPTT's streams, its state carried from batch to batch."""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np

from llm_jax import objectives
from llm_jax.tasks.base import Packing, Task


def frame(ids: np.ndarray, eos_id: int | None) -> dict[str, np.ndarray]:
  """One document as next-token pairs.

  With an EOS token the document is framed ``[eos] doc -> doc [eos]``: every token of it is
  predicted (the first from the EOS that opens it) and so is its end, which is how
  perplexity on Penn Treebank counts ``<eos>``. Without one (a char vocabulary) it is the
  plain shift ``doc[:-1] -> doc[1:]``.
  """
  ids = np.asarray(ids, np.int32)
  if eos_id is None:
    return {'inputs': ids[:-1], 'targets': ids[1:]}
  eos = np.array([eos_id], np.int32)
  return {'inputs': np.concatenate([eos, ids]), 'targets': np.concatenate([ids, eos])}


def packed_batch(rows: dict[str, np.ndarray], cross_document: bool) -> dict[str, np.ndarray]:
  """Names grain's packed next-token features as the model reads them.

  Segment id 0 is padding. ``cross_document`` lets attention run across document boundaries
  within a row (a continuous-stream LM, as most PTB results are reported); otherwise
  segment ids and per-document positions keep each document to itself.
  """
  segments = rows['inputs_segment_ids']
  batch = {'inputs': rows['inputs'], 'targets': rows['targets'],
           'loss_mask': (segments > 0).astype(np.float32)}
  if cross_document:
    batch['positions'] = np.broadcast_to(np.arange(segments.shape[-1], dtype=np.int32),
                                         segments.shape).copy()
    batch['segment_ids'] = (segments > 0).astype(np.int32)
  else:
    batch['positions'] = rows['inputs_positions']
    batch['segment_ids'] = segments
  return batch


@dataclasses.dataclass(frozen=True)
class CausalLM(Task):
  name: str = 'causal_lm'
  model_kinds: tuple[str, ...] = ('decoder', 'lstm')
  batchings: tuple[str, ...] = ('windows', 'packed', 'streams')

  def loss(self, model, params, batch, rng, train):
    """Packed rows pass ``positions`` and ``segment_ids``; ``loss_mask`` drops padding."""
    logits = model.apply({'params': params}, batch['inputs'], batch.get('positions'),
                         batch.get('segment_ids'), deterministic=not train,
                         rngs={'dropout': rng})
    return objectives.causal_lm(logits, batch['targets'], batch.get('loss_mask'))

  def carries(self, config):
    return config.data.batching == 'streams'

  def carried_loss(self, model, params, batch, carry, rng, train):
    """Truncated BPTT: from the state the stream's previous batch ended in (zeros where
    ``reset``), this batch's loss and the state it ends in (no gradient flows into the
    previous batch). The optimized loss is the paper's and its reference code's: the mean over
    the streams summed over the ``seq_len`` unrolled steps, which is what its lr of 1 and clip
    norm of 5 are for; the metrics are the usual per-token sums."""
    keep = 1.0 - batch['reset'][:, None]
    carry = jax.tree_util.tree_map(lambda s: s * keep, carry)
    logits, carry = model.apply({'params': params}, batch['inputs'], carry,
                                deterministic=not train, rngs={'dropout': rng})
    mean, metrics = objectives.causal_lm(logits, batch['targets'], batch.get('loss_mask'))
    return mean * batch['inputs'].shape[1], (metrics, carry)

  def errors(self, config):
    problems = super().errors(config)
    lstm, streams = config.model.kind == 'lstm', config.data.batching == 'streams'
    if lstm and not streams:
      problems.append('an LSTM language model (model.kind="lstm") trains by truncated BPTT over '
                      'parallel streams: set data.batching="streams"')
    if streams and not lstm:
      problems.append('data.batching="streams" carries a recurrent state between batches; '
                      f'model.kind={config.model.kind!r} has none: use windows or packed')
    if streams and config.train.microbatches != 1:
      problems.append('data.batching="streams" carries each stream\'s state into its next '
                      'batch, which slices cannot: set train.microbatches=1')
    return problems

  def packing(self, special, config):
    seq_len = config.train.seq_len
    return Packing(functools.partial(frame, eos_id=special.get('eos')),
                   {'inputs': seq_len, 'targets': seq_len},
                   functools.partial(packed_batch, cross_document=config.data.cross_document))


TASK = CausalLM()
