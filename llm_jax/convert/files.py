"""The two directory layouts the converter writes.

An imported model (``--from-hf DIR --out WORKDIR``)::

  WORKDIR/model_config.json   TransformerConfig fields (JSON)
  WORKDIR/params.safetensors  float32 parameters, keyed by '/'-joined tree path
  WORKDIR/hf_config.json      the source config.json (family, token ids, fields not modelled)
  WORKDIR/hf_tokenizer/       the source's tokenizer files, as they were

A Hugging Face checkpoint (``--to-hf``): ``config.json`` + ``model.safetensors`` (+ the
tokenizer files), which ``transformers``' ``from_pretrained`` loads.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import jax
import numpy as np
from flax import traverse_util
from safetensors.flax import load_file, save_file

from llm_jax import fileio
from llm_jax.convert.family import ConversionError
from llm_jax.models import TransformerConfig

MODEL_CONFIG = 'model_config.json'
PARAMS = 'params.safetensors'
HF_CONFIG = 'hf_config.json'
TOKENIZER_DIR = 'hf_tokenizer'
TOKENIZER_FILES = ('tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json',
                   'added_tokens.json', 'vocab.txt', 'vocab.json', 'merges.txt', 'spiece.model',
                   'tokenizer.model')


def _save_tensors(tensors: dict[str, jax.Array], path: str) -> None:
  """Atomically, with the metadata transformers expects of a PyTorch-format file. Arrays are
  made C-contiguous: safetensors writes a numpy array's buffer as is, and a transposed view
  (a kernel exported from host parameters) would be stored untransposed."""
  tmp = path + '.tmp'
  save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, tmp,
            metadata={'format': 'pt'})
  os.replace(tmp, path)


def copy_tokenizer(source: str, target: str) -> list[str]:
  """Copies whichever tokenizer files ``source`` holds; returns their names."""
  names = [n for n in TOKENIZER_FILES if os.path.isfile(os.path.join(source, n))]
  if names:
    os.makedirs(target, exist_ok=True)
  for name in names:
    shutil.copyfile(os.path.join(source, name), os.path.join(target, name))
  return names


def write_imported(out: str, cfg: TransformerConfig, params: dict, hf_config: dict,
                   source: str) -> None:
  os.makedirs(out, exist_ok=True)
  _save_tensors(traverse_util.flatten_dict(params, sep='/'), os.path.join(out, PARAMS))
  fileio.write_atomic(os.path.join(out, HF_CONFIG), json.dumps(hf_config, indent=2))
  copy_tokenizer(source, os.path.join(out, TOKENIZER_DIR))
  # last: a directory with model_config.json is complete
  fileio.write_atomic(os.path.join(out, MODEL_CONFIG),
                      json.dumps(dataclasses.asdict(cfg), indent=2, sort_keys=True))


def read_imported(directory: str) -> tuple[TransformerConfig, dict, dict | None]:
  """(config, params, source config.json or None) of a directory ``write_imported`` wrote."""
  path = os.path.join(directory, MODEL_CONFIG)
  if not os.path.isfile(path):
    raise ConversionError(f'{directory} has no {MODEL_CONFIG}: --to-hf takes a directory of '
                          '--from-hf or a workdir of llm-jax train')
  with open(path) as f:  # JSON has no tuples: tuple fields (lstm_hidden) come back as lists
    cfg = TransformerConfig(**{k: tuple(v) if isinstance(v, list) else v
                               for k, v in json.load(f).items()})
  params = traverse_util.unflatten_dict(load_file(os.path.join(directory, PARAMS)), sep='/')
  hf_config = None
  if os.path.isfile(os.path.join(directory, HF_CONFIG)):
    with open(os.path.join(directory, HF_CONFIG)) as f:
      hf_config = json.load(f)
  return cfg, params, hf_config


def write_hf(out: str, hf_config: dict, tensors: dict[str, jax.Array],
             tokenizer_source: str | None = None) -> None:
  os.makedirs(out, exist_ok=True)
  _save_tensors(tensors, os.path.join(out, 'model.safetensors'))
  fileio.write_atomic(os.path.join(out, 'config.json'), json.dumps(hf_config, indent=2))
  if tokenizer_source:
    copy_tokenizer(tokenizer_source, out)
