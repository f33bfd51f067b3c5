"""``llm-jax bench``: train-step or decode speed beside Hugging Face PyTorch, in one run."""

from __future__ import annotations

import json

from llm_jax.cli import args as args_lib
from llm_jax.errors import UsageError


def add(sub) -> None:
  b = sub.add_parser('bench', help='train-step (or decode) speed and MFU, beside Hugging Face '
                     'PyTorch')
  args_lib.add_config(b, required=False, default='configs/gpt.py:gpt2')
  b.add_argument('--generate', action='store_true',
                 help='time cached greedy decoding at batch 1 and 8 instead of training')
  b.add_argument('--prompt-len', type=int, default=128)
  b.add_argument('--new-tokens', type=int, default=128)
  b.add_argument('--weights-dtype', choices=('float32', 'bfloat16'), default='float32',
                 help='with --generate: the dtype our weights are stored and computed in '
                      '(HF stays float32)')
  b.add_argument('--steps', type=int, default=20, help='timed steps (median reported)')
  b.add_argument('--no-hf', action='store_true', help='skip the PyTorch comparison')
  b.add_argument('--json', action='store_true', help='also print the results as JSON')
  b.set_defaults(fn=run)


def run(args, overrides) -> None:
  from llm_jax.perf import bench
  if args.weights_dtype != 'float32' and not args.generate:
    raise UsageError('--weights-dtype applies to decoding: add --generate, or set '
                     '--config.model.dtype for a training step')
  config = args_lib.config(args, overrides)
  if args.generate:
    results = bench.run_generate(config, compare_hf=not args.no_hf,
                                 new_tokens=args.new_tokens, prompt_len=args.prompt_len,
                                 weights_dtype=args.weights_dtype)
  else:
    results = bench.run(config, steps=args.steps, compare_hf=not args.no_hf)
  if args.json:
    print(json.dumps(results))
