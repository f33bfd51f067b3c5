"""The directory ``llm-jax convert --from-hf DIR --out OUT`` writes, and reading it back::

  OUT/model_config.json   TransformerConfig fields (JSON)
  OUT/params.safetensors  float32 parameters, keyed by '/'-joined tree path
  OUT/hf_config.json      the source config.json (family, token ids, fields not modelled)
  OUT/hf_tokenizer/       the source's tokenizer files, as they were

``model_config.json`` is written last: a directory that has it is complete.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

from flax import traverse_util

from llm_jax import fileio
from llm_jax.errors import UsageError
from llm_jax.models import TransformerConfig

MODEL_CONFIG = 'model_config.json'
PARAMS = 'params.safetensors'
HF_CONFIG = 'hf_config.json'
TOKENIZER_DIR = 'hf_tokenizer'
TOKENIZER_FILES = ('tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json',
                   'added_tokens.json', 'vocab.txt', 'vocab.json', 'merges.txt', 'spiece.model',
                   'tokenizer.model', 'chat_template.jinja', 'generation_config.json')


def is_imported(path: str) -> bool:
  return os.path.isfile(os.path.join(path, MODEL_CONFIG))


def copy_tokenizer(source: str, target: str) -> list[str]:
  """Copies whichever Hugging Face tokenizer files ``source`` holds; returns their names."""
  names = [n for n in TOKENIZER_FILES if os.path.isfile(os.path.join(source, n))]
  if names:
    os.makedirs(target, exist_ok=True)
  for name in names:
    shutil.copyfile(os.path.join(source, name), os.path.join(target, name))
  return names


def write(out: str, cfg: TransformerConfig, params: dict, hf_config: dict, source: str) -> None:
  os.makedirs(out, exist_ok=True)
  fileio.write_safetensors(os.path.join(out, PARAMS), traverse_util.flatten_dict(params, sep='/'))
  fileio.write_atomic(os.path.join(out, HF_CONFIG), json.dumps(hf_config, indent=2))
  copy_tokenizer(source, os.path.join(out, TOKENIZER_DIR))
  fileio.write_atomic(os.path.join(out, MODEL_CONFIG),
                      json.dumps(dataclasses.asdict(cfg), indent=2, sort_keys=True))


def read(directory: str) -> tuple[TransformerConfig, dict, dict | None]:
  """(config, params, source config.json or None) of a directory ``write`` wrote."""
  from safetensors.flax import load_file
  path = os.path.join(directory, MODEL_CONFIG)
  if not os.path.isfile(path):
    raise UsageError(f'{directory} has no {MODEL_CONFIG}: give a directory of llm-jax convert '
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
