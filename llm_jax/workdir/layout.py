"""The one place a workdir's file names are spelled.

A workdir of ``llm-jax train``::

  config.json         the run's whole config (resolved; it rebuilds the run)
  tokenizer/          the tokenizer the run encoded with (spec.json and its files)
  labels.json         a classifier's label names, in id order
  clean_report.json   what data cleaning dropped
  checkpoints/        orbax checkpoints of the train state, the latest to resume from
  best/               the checkpoint of the best validation metric (train.select_metric)
  metrics.jsonl       one JSON line per logged split and step
  tensorboard/        the same figures as TensorBoard events
  profile/            jax.profiler traces (train --profile)
  wandb/, wandb_id    Weights & Biases' local files and the run's id (train.wandb_project)
  run.lock            held (flock) by the run training here; names its process

Every file is written whole (``fileio.write_atomic``) and orbax renames each checkpoint
into place when complete, so a killed run leaves nothing half-written.
"""

from __future__ import annotations

import json
import os

import ml_collections

from llm_jax import config as config_lib
from llm_jax import fileio
from llm_jax.data import tokenizers

CONFIG = 'config.json'
TOKENIZER = 'tokenizer'
LABELS = 'labels.json'
CLEAN_REPORT = 'clean_report.json'
CHECKPOINTS = 'checkpoints'
BEST = 'best'
METRICS = 'metrics.jsonl'
TENSORBOARD = 'tensorboard'
PROFILE = 'profile'
LOCK = 'run.lock'
WANDB_ID = 'wandb_id'


def is_workdir(path: str) -> bool:
  return (os.path.isfile(os.path.join(path, CONFIG))
          and os.path.isfile(os.path.join(path, TOKENIZER, tokenizers.SPEC)))


def read_config(workdir: str) -> ml_collections.ConfigDict | None:
  """The config a run saved (None before its first start)."""
  path = os.path.join(workdir, CONFIG)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return config_lib.from_json(f.read())


def saved_tokenizer(workdir: str) -> tokenizers.Tokenizer | None:
  path = os.path.join(workdir, TOKENIZER)
  return tokenizers.load(path) if os.path.isfile(os.path.join(path, tokenizers.SPEC)) else None


def label_names(workdir: str) -> tuple[str, ...]:
  path = os.path.join(workdir, LABELS)
  if not os.path.exists(path):
    return ()
  with open(path) as f:
    return tuple(json.load(f))


def has_best(workdir: str) -> bool:
  best = os.path.join(workdir, BEST)
  return os.path.isdir(best) and any(name.isdigit() for name in os.listdir(best))


def write_run(workdir: str, config: ml_collections.ConfigDict, tokenizer: tokenizers.Tokenizer,
              clean_report: dict, label_names: tuple[str, ...] | None) -> None:
  """What a run writes once at its start, beside the checkpoints: enough to rebuild it."""
  os.makedirs(workdir, exist_ok=True)
  fileio.write_atomic(os.path.join(workdir, CONFIG), config_lib.to_json(config))
  tokenizer.save(os.path.join(workdir, TOKENIZER))
  fileio.write_atomic(os.path.join(workdir, CLEAN_REPORT), json.dumps(clean_report, indent=1))
  if label_names is not None:
    fileio.write_atomic(os.path.join(workdir, LABELS), json.dumps(label_names))
