"""``llm-jax tokenizer train``: a sentencepiece model from text files."""

from __future__ import annotations

import time

from llm_jax.cli import args as args_lib


def add(sub) -> None:
  tok = sub.add_parser('tokenizer', help='train a sentencepiece tokenizer')
  tok_sub = tok.add_subparsers(dest='tokenizer_command', required=True)
  tt = tok_sub.add_parser('train', help='train a lossless sentencepiece BPE or unigram model')
  tt.add_argument('--input', nargs='+', required=True, help='text files (.gz read as gzip)')
  tt.add_argument('--vocab-size', type=int, required=True)
  tt.add_argument('--model-type', default='bpe', choices=('bpe', 'unigram'))
  tt.add_argument('--output', required=True, help='directory to save the tokenizer in; '
                  'point data.tokenizer_path at it')
  tt.set_defaults(fn=run)


def run(args, overrides) -> None:
  from llm_jax.data import sources, tokenizers
  args_lib.refuse_overrides('tokenizer train', overrides)
  texts = []
  for path in args.input:
    texts += sources.read_text(path).split('\n')  # lines; byte fallback covers '\n'
  start = time.perf_counter()
  tokenizer = tokenizers.SentencePieceTokenizer.train(texts, args.vocab_size, args.model_type)
  seconds = time.perf_counter() - start
  tokenizer.save(args.output)
  print(f'trained a {args.model_type} sentencepiece model of {tokenizer.vocab_size} pieces on '
        f'{sum(map(len, texts)):,} characters in {seconds:.1f} s; saved to {args.output}')
