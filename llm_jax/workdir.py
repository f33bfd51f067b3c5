"""Reading a training workdir back: its config, tokenizer, model and latest parameters."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import flax.linen as nn
import jax
import ml_collections

from llm_jax import config as config_lib
from llm_jax.data import tokenizers
from llm_jax.errors import UsageError
from llm_jax.train.checkpoint import Checkpointer


@dataclasses.dataclass
class Trained:
  config: ml_collections.ConfigDict
  tokenizer: tokenizers.Tokenizer
  model: nn.Module
  params: dict
  step: int
  label_names: tuple[str, ...] = ()
  setup: Any = None  # the loop's Setup: jitted eval and predict steps on the mesh at hand


CHECKPOINTS = ('auto', 'best', 'latest')


def load(workdir: str, checkpoint: str = 'auto') -> Trained:
  """A checkpoint of ``workdir`` with what is needed to use it.

  ``checkpoint``: ``best`` is the one a run with ``train.select_metric`` kept for its best
  validation figure, ``latest`` the last one saved, ``auto`` the best where there is one.
  The model and optimizer are rebuilt exactly as the run built them (a classifier's frozen
  leaves hold no optimizer state, so the restore target depends on the freeze spec), on a
  data-parallel mesh of the devices at hand, whatever mesh the run trained on.
  """
  from llm_jax.train import loop  # late: the training package imports this module's users
  config_path = os.path.join(workdir, 'config.json')
  if not os.path.exists(config_path):
    raise FileNotFoundError(f'{workdir} has no config.json: is it a workdir of llm-jax train?')
  with open(config_path) as f:
    config = config_lib.from_json(f.read())
  if checkpoint not in CHECKPOINTS:
    raise UsageError(f'checkpoint {checkpoint!r} is not one of {CHECKPOINTS}')
  tokenizer = tokenizers.load(os.path.join(workdir, 'tokenizer'))
  best_dir = os.path.join(workdir, 'best')
  has_best = os.path.isdir(best_dir) and any(name.isdigit() for name in os.listdir(best_dir))
  if checkpoint == 'best' and not has_best:
    raise FileNotFoundError(f'{workdir} holds no best checkpoint: only runs with '
                            'train.select_metric keep one')
  use_best = has_best and checkpoint != 'latest'
  checkpoints = Checkpointer(workdir, use_async=False, kind='best' if use_best else 'checkpoints')
  if checkpoints.latest_step() is None:
    raise FileNotFoundError(f'{workdir} holds no checkpoint yet')
  label_names = _label_names(workdir)
  config.unlock()
  config.parallel = ml_collections.ConfigDict({'data': -1, 'fsdp': 1, 'tensor': 1})
  config.lock()
  model_cfg = config_lib.model_config(config, tokenizer.vocab_size)
  setup = loop.build(config, model_cfg, tokenizer.special,
                     loop.label_count(config, label_names))
  state, record = checkpoints.restore(setup.abstract_state)
  checkpoints.close()
  return Trained(config, tokenizer, setup.model, jax.device_get(state.params), record['step'],
                 label_names, setup)


def _label_names(workdir: str) -> tuple[str, ...]:
  path = os.path.join(workdir, 'labels.json')
  if not os.path.exists(path):
    return ()
  with open(path) as f:
    return tuple(json.load(f))


def pretrained_params(path: str) -> dict:
  """The parameters to start a finetune from: a workdir of ``llm-jax train`` (its latest
  checkpoint) or a directory written by ``llm-jax convert --from-hf``."""
  from llm_jax.convert import files
  if os.path.exists(os.path.join(path, 'model_config.json')):
    return files.read_imported(path)[1]
  if os.path.exists(os.path.join(path, 'config.json')):
    return load(path).params
  raise UsageError(f'finetune.pretrained={path} is neither a workdir of llm-jax train nor a '
                   'directory of llm-jax convert --from-hf')
