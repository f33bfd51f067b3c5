"""``llm-jax generate``: sample text from a decoder workdir."""

from __future__ import annotations

from llm_jax.cli import args as args_lib
from llm_jax.errors import UsageError


def add(sub) -> None:
  g = sub.add_parser('generate', help='sample text from a trained workdir')
  g.add_argument('--workdir', required=True)
  g.add_argument('--prompt', default='\n')
  g.add_argument('--max-new-tokens', type=int, default=200)
  g.add_argument('--temperature', type=float, default=0.8, help='0 for greedy decoding')
  g.add_argument('--top-k', type=int, default=0, help='0 keeps every token')
  g.add_argument('--top-p', type=float, default=1.0)
  g.add_argument('--num-samples', type=int, default=1)
  g.add_argument('--seed', type=int, default=0)
  g.set_defaults(fn=run)


def run(args, overrides) -> None:
  import jax

  from llm_jax import workdir
  from llm_jax.inference import generate
  args_lib.refuse_overrides('generate', overrides)
  trained = workdir.load(args.workdir)
  if trained.config.model.kind != 'decoder':
    raise UsageError(f'{args.workdir} holds a {trained.config.model.kind} model; generate '
                     'samples from decoder-only language models')
  prompt = trained.tokenizer.encode(args.prompt)
  batch = prompt[None, :].repeat(args.num_samples, axis=0)
  out = generate.generate(trained.model, trained.params, batch, args.max_new_tokens,
                          jax.random.key(args.seed), temperature=args.temperature,
                          top_k=args.top_k, top_p=args.top_p)
  for i, row in enumerate(out):
    if args.num_samples > 1:
      print(f'--- sample {i + 1}')
    print(trained.tokenizer.decode(row))
