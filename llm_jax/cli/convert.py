"""``llm-jax convert``: Hugging Face checkpoint directories in and out.

  llm-jax convert --from-hf DIR --out OUT      # config.json + *.safetensors -> ours
  llm-jax convert --to-hf WORKDIR --out DIR    # ours -> config.json + model.safetensors
"""

from __future__ import annotations

from llm_jax.cli import args as args_lib


def add(sub) -> None:
  c = sub.add_parser('convert', help='Hugging Face checkpoints in (--from-hf) and out (--to-hf)')
  way = c.add_mutually_exclusive_group(required=True)
  way.add_argument('--from-hf', metavar='DIR', help='a Hugging Face checkpoint directory')
  way.add_argument('--to-hf', metavar='WORKDIR',
                   help='a directory written by --from-hf, or a workdir of llm-jax train')
  c.add_argument('--out', required=True, help='the directory to write')
  c.set_defaults(fn=run)


def run(args, overrides) -> None:
  from llm_jax.convert import directories
  args_lib.refuse_overrides('convert', overrides)
  if args.from_hf:
    print(directories.import_hf(args.from_hf, args.out))
  else:
    print(directories.export_hf(args.to_hf, args.out))
