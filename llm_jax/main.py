"""The ``llm-jax`` command: train, cv, eval, generate, predict, tokenizer, convert, plan, bench.

Config overrides are ``--config.section.field=value`` arguments after ``--config=FILE[:ARG]``.
Errors a user can fix (a config field, a missing file) print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from llm_jax import host
from llm_jax.errors import UsageError


def _split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
  overrides, rest = [], []
  for arg in argv:
    if arg.startswith('--config.'):
      overrides.append(arg[len('--config.'):])
    else:
      rest.append(arg)
  return rest, overrides


def _load_config(args, overrides):
  from llm_jax import config as config_lib
  return config_lib.load(args.config, overrides)


def cmd_train(args, overrides) -> None:
  from llm_jax import parallel, train
  config = _load_config(args, overrides)  # a bad config fails before joining a cluster
  if args.distributed:
    parallel.initialize_distributed(args.coordinator, args.num_processes, args.process_id)
  final = train.run(config, args.workdir, profile=_profile_steps(args.profile))
  print(json.dumps(final, indent=2))


def _profile_steps(spec: str) -> tuple[int, int] | None:
  if not spec:
    return None
  try:
    start, _, stop = spec.partition(':')
    start, stop = int(start), int(stop) if stop else int(start) + 3
  except ValueError:
    raise UsageError(f'--profile={spec!r}: give START:STOP or N (steps)') from None
  if not 0 <= start < stop:
    raise UsageError(f'--profile={spec!r}: need 0 <= START < STOP')
  return start, stop


def cmd_cv(args, overrides) -> None:
  from llm_jax import cv
  config = _load_config(args, overrides)
  folds = args.folds or config.data.cv_folds
  if not folds:
    raise UsageError('give --folds K (or set data.cv_folds in the config)')
  result = cv.run(config, args.workdir, folds)
  print(json.dumps(result, indent=1) if args.json else cv.table(result))


def cmd_eval(args, overrides) -> None:
  from llm_jax import evaluate
  if overrides:
    raise UsageError('eval takes no --config overrides: it evaluates the run as it was trained')
  result = evaluate.run(args.workdir, args.split, args.checkpoint)
  print(json.dumps(result, indent=1) if args.json else evaluate.table(result))


def cmd_generate(args, overrides) -> None:
  import jax
  from llm_jax import generate, workdir
  if overrides:
    raise UsageError('generate takes no --config overrides')
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


def cmd_predict(args, overrides) -> None:
  from llm_jax import predict, workdir
  if overrides:
    raise UsageError('predict takes no --config overrides')
  texts = list(args.text)
  if args.input:
    if not os.path.isfile(args.input):
      raise UsageError(f'--input {args.input} does not exist')
    with open(args.input, encoding='utf-8') as f:
      texts += [line.rstrip('\n') for line in f if line.strip()]
  if not texts:
    raise UsageError('give --text "..." (repeatable) or --input FILE (one text per line)')
  for text, (label, prob) in zip(texts, predict.classify(
      workdir.load(args.workdir, args.checkpoint), texts)):
    print(f'{label}\t{prob:.4f}\t{text}')


def cmd_tokenizer_train(args, overrides) -> None:
  import time
  from llm_jax.data import sources, tokenizers
  if overrides:
    raise UsageError('tokenizer train takes no --config overrides')
  texts = []
  for path in args.input:
    text = sources.read_text(path)
    texts += text.split('\n')  # sentencepiece learns from lines; byte fallback covers '\n'
  start = time.perf_counter()
  tokenizer = tokenizers.SentencePieceTokenizer.train(texts, args.vocab_size, args.model_type)
  seconds = time.perf_counter() - start
  tokenizer.save(args.output)
  print(f'trained a {args.model_type} sentencepiece model of {tokenizer.vocab_size} pieces on '
        f'{sum(map(len, texts)):,} characters in {seconds:.1f} s; saved to {args.output}')


def cmd_plan(args, overrides) -> None:
  from llm_jax import plan
  config = _load_config(args, overrides)
  results = plan.run(config, args.chips, args.chip, args.mfu)
  if args.json:
    print(json.dumps(results))


def cmd_convert(args, overrides) -> None:
  from llm_jax.convert import cli as convert_cli
  if overrides:
    raise UsageError('convert takes no --config overrides')
  print(convert_cli.run(args))


def cmd_bench(args, overrides) -> None:
  from llm_jax import bench
  config = _load_config(args, overrides)
  if args.generate:
    results = bench.run_generate(config, compare_hf=not args.no_hf,
                                 new_tokens=args.new_tokens, prompt_len=args.prompt_len)
  else:
    results = bench.run(config, steps=args.steps, compare_hf=not args.no_hf)
  if args.json:
    print(json.dumps(results))


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog='llm-jax', description=__doc__.splitlines()[0])
  sub = p.add_subparsers(dest='command', required=True)

  t = sub.add_parser('train', help='train or resume a model in a workdir')
  t.add_argument('--config', required=True, help='config file, optionally FILE:ARG')
  t.add_argument('--workdir', required=True, help='checkpoints, metrics and logs go here')
  t.add_argument('--distributed', action='store_true',
                 help='join a multi-process run (jax.distributed; auto-detected on TPU pods '
                 'and SLURM unless --coordinator is given)')
  t.add_argument('--coordinator', default='', help='host:port of process 0')
  t.add_argument('--num-processes', type=int, default=0)
  t.add_argument('--process-id', type=int, default=-1)
  t.add_argument('--profile', default='', metavar='START:STOP',
                 help='write a jax.profiler trace of steps START..STOP-1 (or N: the 3 steps '
                 'after step N) to WORKDIR/profile')
  t.set_defaults(fn=cmd_train)

  cv = sub.add_parser('cv', help='k-fold cross-validation of a classifier config, one run '
                      'per fold in WORKDIR/fold_I')
  cv.add_argument('--config', required=True, help='config file, optionally FILE:ARG')
  cv.add_argument('--workdir', required=True)
  cv.add_argument('--folds', type=int, default=0, help='default: the config\'s data.cv_folds')
  cv.add_argument('--json', action='store_true', help='print every fold\'s figures as JSON')
  cv.set_defaults(fn=cmd_cv)

  ev = sub.add_parser('eval', help='metrics of a workdir\'s checkpoint over a whole split')
  ev.add_argument('--workdir', required=True)
  ev.add_argument('--split', default='validation', help='validation or test')
  ev.add_argument('--checkpoint', default='auto', choices=('auto', 'best', 'latest'),
                  help='auto: the best (train.select_metric) where kept, else the latest')
  ev.add_argument('--json', action='store_true')
  ev.set_defaults(fn=cmd_eval)

  g = sub.add_parser('generate', help='sample text from a trained workdir')
  g.add_argument('--workdir', required=True)
  g.add_argument('--prompt', default='\n')
  g.add_argument('--max-new-tokens', type=int, default=200)
  g.add_argument('--temperature', type=float, default=0.8, help='0 for greedy decoding')
  g.add_argument('--top-k', type=int, default=0, help='0 keeps every token')
  g.add_argument('--top-p', type=float, default=1.0)
  g.add_argument('--num-samples', type=int, default=1)
  g.add_argument('--seed', type=int, default=0)
  g.set_defaults(fn=cmd_generate)

  pr = sub.add_parser('predict', help='label and probability for each text, from a '
                      'classifier workdir')
  pr.add_argument('--workdir', required=True)
  pr.add_argument('--text', action='append', default=[], help='a text (repeatable)')
  pr.add_argument('--input', default='', help='a file of texts, one per line')
  pr.add_argument('--checkpoint', default='auto', choices=('auto', 'best', 'latest'),
                  help='auto: the best (train.select_metric) where kept, else the latest')
  pr.set_defaults(fn=cmd_predict)

  tok = sub.add_parser('tokenizer', help='train a sentencepiece tokenizer')
  tok_sub = tok.add_subparsers(dest='tokenizer_command', required=True)
  tt = tok_sub.add_parser('train', help='train a lossless sentencepiece BPE or unigram model')
  tt.add_argument('--input', nargs='+', required=True, help='text files (.gz read as gzip)')
  tt.add_argument('--vocab-size', type=int, required=True)
  tt.add_argument('--model-type', default='bpe', choices=('bpe', 'unigram'))
  tt.add_argument('--output', required=True, help='directory to save the tokenizer in; '
                  'point data.tokenizer_path at it')
  tt.set_defaults(fn=cmd_tokenizer_train)

  from llm_jax.convert import cli as convert_cli  # argparse only; jax loads when converting
  c = sub.add_parser('convert', help='Hugging Face checkpoints in (--from-hf) and out (--to-hf)')
  convert_cli.add_arguments(c)
  c.set_defaults(fn=cmd_convert)

  pl = sub.add_parser('plan', help='parameters, FLOPs, memory per device and step time of a '
                      'config on a chip count, without running it')
  pl.add_argument('--config', required=True)
  pl.add_argument('--chips', type=int, required=True)
  pl.add_argument('--chip', required=True, help='tpu-v4, tpu-v5e, tpu-v5p, tpu-v6e, a100, '
                  'h100, h200')
  pl.add_argument('--mfu', type=float, default=0.5, help='the MFU to quote a step time at')
  pl.add_argument('--json', action='store_true')
  pl.set_defaults(fn=cmd_plan)

  b = sub.add_parser('bench', help='train-step (or decode) speed and MFU, beside Hugging Face '
                     'PyTorch')
  b.add_argument('--config', default='configs/gpt.py:gpt2',
                 help='default: the GPT-2 124M shape (random weights), for --generate')
  b.add_argument('--generate', action='store_true',
                 help='time cached greedy decoding at batch 1 and 8 instead of training')
  b.add_argument('--prompt-len', type=int, default=128)
  b.add_argument('--new-tokens', type=int, default=128)
  b.add_argument('--steps', type=int, default=20, help='timed steps (median reported)')
  b.add_argument('--no-hf', action='store_true', help='skip the PyTorch comparison')
  b.add_argument('--json', action='store_true', help='also print the results as JSON')
  b.set_defaults(fn=cmd_bench)
  return p


def main(argv: list[str] | None = None) -> None:
  argv = sys.argv[1:] if argv is None else argv
  rest, overrides = _split_overrides(argv)
  args = parser().parse_args(rest)
  host.keep_freed_memory()  # before jax allocates anything (host.py says why)
  try:
    args.fn(args, overrides)
  except (UsageError, FileNotFoundError) as e:
    print(f'llm-jax {args.command}: error: {e}', file=sys.stderr)
    sys.exit(2)


if __name__ == '__main__':
  main()
