"""Instruction tuning (SFT): next-token loss on the responses of prompt/response or chat
examples, packed whole into rows that keep each example to itself.

The pipeline renders each record (``data/sft.py``) into ids and a 0/1 ``trained`` array;
this task frames it as next-token pairs whose loss weight is the target's ``trained``, and
packs examples first-fit, never cutting one across rows (a response cut from its prompt
would train on a question it cannot see). Segment ids keep attention inside each example and
positions restart with it. Evaluation's loss and perplexity are thus over response tokens.
The model is the decoder, pretrained (``finetune.pretrained``), frozen by ``finetune.freeze``
and adapted by ``finetune.lora_rank`` as a classifier's body is.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from llm_jax import models
from llm_jax.tasks.base import Packing, lora_config
from llm_jax.tasks.causal_lm import CausalLM, packed_batch


def frame(encoded: tuple[np.ndarray, np.ndarray], seq_len: int) -> dict[str, np.ndarray]:
  """``ids[:-1] -> ids[1:]``, weighted by whether each target is trained; an example longer
  than a row keeps its last ``seq_len`` targets (the answer, and as much of the prompt as
  fits)."""
  ids, trained = encoded
  ids, trained = ids[-(seq_len + 1):], trained[-(seq_len + 1):]
  return {'inputs': ids[:-1], 'targets': ids[1:], 'weights': trained[1:].astype(np.float32)}


def finish(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  batch = packed_batch(rows, cross_document=False)
  batch['loss_mask'] = batch['loss_mask'] * rows['weights']
  return batch


@dataclasses.dataclass(frozen=True)
class SFT(CausalLM):
  name: str = 'sft'
  model_kinds: tuple[str, ...] = ('decoder',)
  needs: tuple[str, ...] = ('eos',)
  batchings: tuple[str, ...] = ('packed',)
  finetunes: bool = True
  reads: str = 'conversation'

  def packing(self, special, config):
    del special  # framing is the renderer's; examples never mix
    seq_len = config.train.seq_len
    return Packing(functools.partial(frame, seq_len=seq_len),
                   {'inputs': seq_len, 'targets': seq_len, 'weights': seq_len}, finish,
                   whole=True)

  def model(self, cfg, config, label_names=()):
    return models.build(cfg, lora_config(config.finetune))


TASK = SFT()
