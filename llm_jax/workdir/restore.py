"""A workdir's checkpoint with what is needed to use it: config, tokenizer, model, parameters.

Only the parameters are restored (orbax partial restore): evaluating, predicting, sampling and
exporting build the model, never an optimizer, so they work whatever the run trained with.
"""

from __future__ import annotations

import dataclasses
import os

import flax.linen as nn
import jax
import ml_collections

from llm_jax import config as config_lib
from llm_jax import models, parallel, tasks
from llm_jax.data import tokenizers
from llm_jax.errors import UsageError
from llm_jax.workdir import imported, layout
from llm_jax.workdir.checkpoints import Checkpointer

CHECKPOINTS = ('auto', 'best', 'latest')


@dataclasses.dataclass
class Trained:
  config: ml_collections.ConfigDict
  tokenizer: tokenizers.Tokenizer
  model: nn.Module
  params: dict  # host arrays
  step: int
  label_names: tuple[str, ...] = ()
  imported: bool = False  # a directory of convert --from-hf, not a run of llm-jax train

  @property
  def task(self) -> tasks.Task:
    return tasks.get(self.config.objective)


def abstract_params(model: nn.Module, cfg: models.TransformerConfig, seq_len: int) -> dict:
  """The parameters' shapes and dtypes, on this host's first device; nothing is allocated."""
  boxed = jax.eval_shape(lambda: model.init(jax.random.key(0),
                                            *models.sample_inputs(cfg, 1, seq_len)))['params']
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                                parallel.unbox(boxed))


def load(workdir: str, checkpoint: str = 'auto') -> Trained:
  """A checkpoint of ``workdir``: ``best`` is the one a run with ``train.select_metric`` kept
  for its best validation figure, ``latest`` the last one saved, ``auto`` the best where
  there is one. Whatever mesh the run trained on, the parameters come back to the host."""
  if checkpoint not in CHECKPOINTS:
    raise UsageError(f'checkpoint {checkpoint!r} is not one of {CHECKPOINTS}')
  if imported.is_imported(workdir):
    return _imported(workdir)
  config = layout.read_config(workdir)
  if config is None:
    raise FileNotFoundError(f'{workdir} has no {layout.CONFIG}: is it a workdir of llm-jax '
                            'train?')
  tokenizer = layout.saved_tokenizer(workdir)
  if tokenizer is None:
    raise FileNotFoundError(f'{workdir} has no saved tokenizer ({layout.TOKENIZER}/)')
  has_best = layout.has_best(workdir)
  if checkpoint == 'best' and not has_best:
    raise FileNotFoundError(f'{workdir} holds no best checkpoint: only runs with '
                            'train.select_metric keep one')
  checkpoints = Checkpointer(workdir, use_async=False, best=has_best and checkpoint != 'latest')
  if checkpoints.latest_step() is None:
    raise FileNotFoundError(f'{workdir} holds no checkpoint yet')
  label_names = layout.label_names(workdir)
  model_cfg = config_lib.model_config(config, tokenizer.vocab_size)
  model = tasks.get(config.objective).model(model_cfg, config, label_names)
  params, record = checkpoints.restore_params(
      abstract_params(model, model_cfg, config.train.seq_len))
  checkpoints.close()
  return Trained(config, tokenizer, model, jax.device_get(params), record['step'], label_names)


def _imported(directory: str) -> Trained:
  """A directory of ``convert --from-hf`` as a model to generate from, a decoder or an
  encoder-decoder (its tokenizer: the checkpoint's own files)."""
  cfg, params, _ = imported.read(directory)
  tokenizer_dir = os.path.join(directory, imported.TOKENIZER_DIR)
  if not os.path.isfile(os.path.join(tokenizer_dir, 'tokenizer.json')):
    raise FileNotFoundError(f'{directory} holds no Hugging Face tokenizer.json '
                            f'({imported.TOKENIZER_DIR}/): convert a checkpoint that has one')
  config = config_lib.base()
  config.objective = 'seq2seq' if cfg.kind == 'encoder_decoder' else 'causal_lm'
  config.model.update({k: v for k, v in dataclasses.asdict(cfg).items()})
  config.train.seq_len = cfg.max_len
  model = tasks.get(config.objective).model(cfg, config)
  return Trained(config, tokenizers.from_file(tokenizer_dir), model, params, 0,
                 imported=True)


def pretrained_params(path: str) -> dict:
  """The parameters to start a finetune from: a workdir of ``llm-jax train`` (its latest
  checkpoint) or a directory written by ``llm-jax convert --from-hf``."""
  if imported.is_imported(path):
    return imported.read(path)[1]
  if layout.is_workdir(path):
    return load(path).params
  raise UsageError(f'finetune.pretrained={path} is neither a workdir of llm-jax train nor a '
                   'directory of llm-jax convert --from-hf')
