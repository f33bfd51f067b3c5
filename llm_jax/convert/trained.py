"""A workdir of ``llm-jax train`` as a Hugging Face checkpoint (``convert --to-hf WORKDIR``).

A language model is written as an imported one is, its family inferred from the config; a
classifier as its family's ``...ForSequenceClassification``. LoRA adapters are merged into
their kernels first, so that the checkpoint computes what the adapted model does. Hugging Face
tokenizers (``tokenizer.json`` and its config files) and WordPiece ``vocab.txt`` files are
written beside it; other tokenizers have no Hugging Face form and the summary says so.
"""

from __future__ import annotations

import json
import os
import shutil

from llm_jax import config as config_lib
from llm_jax import fileio
from llm_jax import workdir as workdir_lib
from llm_jax.convert import hf
from llm_jax.convert.family import ConversionError
from llm_jax.data import tokenizers
from llm_jax.models import TransformerConfig, lora


def to_hf(trained: workdir_lib.Trained) -> tuple[dict, dict]:
  """(config.json, tensors) of a workdir's parameters (its best checkpoint where kept)."""
  cfg = config_lib.model_config(trained.config, trained.tokenizer.vocab_size)
  _check_positions(cfg, trained.tokenizer.special.get('pad'))
  adapters = _lora(trained)
  params = lora.merge(trained.params, adapters) if adapters else trained.params
  if not trained.task.labelled:
    return hf.to_hf(cfg, params)
  return hf.classifier_to_hf(trained.model, params, trained.label_names)


def _lora(trained: workdir_lib.Trained) -> lora.LoraConfig | None:
  return getattr(trained.model, 'lora', None)  # a classifier's or a decoder's; not the LSTM's


def _check_positions(cfg: TransformerConfig, pad: int | None) -> None:
  """RoBERTa numbers positions by counting the tokens that are not its ``pad_token_id``
  (written as ``position_offset - 1``); ours count every token. The two agree only if that
  id is the one the tokenizer pads with."""
  if cfg.kind == 'encoder' and cfg.position_offset and pad != cfg.position_offset - 1:
    raise ConversionError(
        f'RoBERTa would read token {cfg.position_offset - 1} as padding (model.position_offset'
        f'={cfg.position_offset}) where the tokenizer pads with {pad}: positions would differ; '
        'train with model.position_offset = the padding id + 1')


def write(workdir: str, out: str) -> str:
  """Converts ``workdir`` into ``out``; returns the one-line summary."""
  try:
    trained = workdir_lib.load(workdir)
  except FileNotFoundError as e:  # no checkpoint yet, a tokenizer file gone
    raise ConversionError(str(e)) from None
  hf_config, tensors = to_hf(trained)
  hf.write_hf(out, hf_config, tensors)
  summary = f'{hf_config["architectures"][0]} (step {trained.step}) -> {out}'
  if _lora(trained):
    summary += '; LoRA adapters merged'
  if not _write_tokenizer(trained.tokenizer, out):
    summary += (f'; tokenizer not written (a {trained.tokenizer.kind} tokenizer has no '
                'Hugging Face form)')
  return summary


def _write_tokenizer(tokenizer: tokenizers.Tokenizer, out: str) -> bool:
  """A Hugging Face tokenizer's own files; a bare WordPiece ``vocab.txt`` gets a
  ``tokenizer_config.json`` naming its casing and its class (which a RoBERTa config.json
  would otherwise pick as BPE)."""
  if tokenizer.kind == 'hf':
    for name in tokenizers.HF_FILES:
      if os.path.isfile(os.path.join(tokenizer.directory, name)):
        shutil.copyfile(os.path.join(tokenizer.directory, name), os.path.join(out, name))
    return True
  if tokenizer.kind != 'wordpiece':
    return False
  shutil.copyfile(tokenizer.path, os.path.join(out, 'vocab.txt'))
  fileio.write_atomic(os.path.join(out, 'tokenizer_config.json'), json.dumps(
      {'tokenizer_class': 'BertTokenizer', 'do_lower_case': tokenizer.lowercase}, indent=2))
  return True
