"""Reading a training workdir back: its config, tokenizer, model and latest parameters."""

from __future__ import annotations

import dataclasses
import os

import flax.linen as nn
import jax
import ml_collections

from llm_jax import config as config_lib
from llm_jax import models, parallel
from llm_jax.data import tokenizers
from llm_jax.train import optim
from llm_jax.train import state as state_lib
from llm_jax.train.checkpoint import Checkpointer


@dataclasses.dataclass
class Trained:
  config: ml_collections.ConfigDict
  tokenizer: tokenizers.Tokenizer
  model: nn.Module
  params: dict
  step: int


def load(workdir: str) -> Trained:
  """The latest checkpoint of ``workdir`` with what is needed to use it."""
  config_path = os.path.join(workdir, 'config.json')
  if not os.path.exists(config_path):
    raise FileNotFoundError(f'{workdir} has no config.json: is it a workdir of llm-jax train?')
  with open(config_path) as f:
    config = config_lib.from_json(f.read())
  tokenizer = tokenizers.load(os.path.join(workdir, 'tokenizer'))
  checkpoints = Checkpointer(workdir, use_async=False)
  if checkpoints.latest_step() is None:
    raise FileNotFoundError(f'{workdir} holds no checkpoint yet')
  model_cfg = config_lib.model_config(config, tokenizer.vocab_size)
  model = models.build(model_cfg)
  # whatever mesh it was trained on, serve it data-parallel on the devices at hand
  mesh = parallel.make_mesh(ml_collections.ConfigDict({'data': -1, 'fsdp': 1, 'tensor': 1}))
  tx = optim.make(config.optim, config.train.steps)
  abstract, _ = state_lib.abstract(
      model, tx, models.sample_inputs(model_cfg, 1, config.train.seq_len), mesh)
  state, record = checkpoints.restore(abstract)
  checkpoints.close()
  return Trained(config, tokenizer, model, jax.device_get(state.params), record['step'])
