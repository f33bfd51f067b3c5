"""``llm-jax plan``: a config's size, FLOPs, memory and step time on a chip count."""

from __future__ import annotations

import json

from llm_jax.cli import args as args_lib


def add(sub) -> None:
  pl = sub.add_parser('plan', help='parameters, FLOPs, memory per device and step time of a '
                      'config on a chip count, without running it')
  args_lib.add_config(pl)
  pl.add_argument('--chips', type=int, required=True)
  pl.add_argument('--chip', required=True, help='tpu-v4, tpu-v5e, tpu-v5p, tpu-v6e, a100, '
                  'h100, h200')
  pl.add_argument('--mfu', type=float, default=0.5, help='the MFU to quote a step time at')
  pl.add_argument('--json', action='store_true')
  pl.set_defaults(fn=run)


def run(args, overrides) -> None:
  from llm_jax.perf import plan
  results = plan.run(args_lib.config(args, overrides), args.chips, args.chip, args.mfu)
  if args.json:
    print(json.dumps(results))
