"""Whole directories converted: a Hugging Face checkpoint into ours, and ours back out.

``export_hf`` takes a directory of ``import_hf`` or a workdir of ``llm-jax train`` (a language
model, or a classifier on a BERT or RoBERTa body, LoRA adapters merged). Each returns a
one-line summary; a checkpoint that cannot be converted raises ConversionError.
"""

from __future__ import annotations

import os

from llm_jax.convert import hf, trained
from llm_jax.convert.family import ConversionError
from llm_jax.workdir import imported, layout


def import_hf(source: str, out: str) -> str:
  """``config.json`` + ``*.safetensors`` in ``source`` -> the imported layout in ``out``."""
  cfg, params, hf_config, dropped = hf.from_hf(source)
  imported.write(out, cfg, params, hf_config, source)
  summary = (f'{hf_config["model_type"]} ({cfg.kind}, {cfg.num_layers} layers, '
             f'{cfg.d_model} wide) -> {out}')
  return summary + (f'; dropped {", ".join(dropped)}' if dropped else '')


def export_hf(source: str, out: str) -> str:
  """A workdir or an imported directory -> ``config.json`` + ``model.safetensors`` in ``out``."""
  if layout.is_workdir(source):
    return trained.write(source, out)
  if not imported.is_imported(source):
    raise ConversionError(f'{source} has no {imported.MODEL_CONFIG}: --to-hf takes a directory '
                          'of llm-jax convert --from-hf or a workdir of llm-jax train')
  cfg, params, hf_config = imported.read(source)
  out_config, tensors = hf.to_hf(cfg, params, hf_config)
  hf.write_hf(out, out_config, tensors, os.path.join(source, imported.TOKENIZER_DIR))
  return f'{out_config["architectures"][0]} -> {out}'
