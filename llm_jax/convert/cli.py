"""``llm-jax convert``: Hugging Face checkpoint directories in and out.

  llm-jax convert --from-hf DIR --out WORKDIR   # config.json + *.safetensors -> ours
  llm-jax convert --to-hf WORKDIR --out DIR     # ours -> config.json + model.safetensors

``--to-hf`` takes a directory of ``--from-hf`` or a workdir of ``llm-jax train`` (a language
model, or a classifier on a BERT or RoBERTa body, LoRA adapters merged).
"""

from __future__ import annotations

import argparse
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
  way = parser.add_mutually_exclusive_group(required=True)
  way.add_argument('--from-hf', metavar='DIR', help='a Hugging Face checkpoint directory')
  way.add_argument('--to-hf', metavar='WORKDIR',
                   help='a directory written by --from-hf, or a workdir of llm-jax train')
  parser.add_argument('--out', required=True, help='the directory to write')


def run(args: argparse.Namespace) -> str:
  """Converts as ``args`` say; returns a one-line summary (errors raise ConversionError)."""
  from llm_jax.convert import files, hf, trained  # jax and flax: imported only when converting
  if args.from_hf:
    cfg, params, hf_config, dropped = hf.from_hf(args.from_hf)
    files.write_imported(args.out, cfg, params, hf_config, args.from_hf)
    summary = (f'{hf_config["model_type"]} ({cfg.kind}, {cfg.num_layers} layers, '
               f'{cfg.d_model} wide) -> {args.out}')
    return summary + (f'; dropped {", ".join(dropped)}' if dropped else '')
  if trained.is_workdir(args.to_hf):
    return trained.write(args.to_hf, args.out)
  cfg, params, hf_config = files.read_imported(args.to_hf)
  out_config, tensors = hf.to_hf(cfg, params, hf_config)
  files.write_hf(args.out, out_config, tensors, os.path.join(args.to_hf, files.TOKENIZER_DIR))
  return f'{out_config["architectures"][0]} -> {args.out}'


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(prog='llm-jax convert', description=__doc__.splitlines()[0])
  add_arguments(parser)
  print(run(parser.parse_args(argv)))
