"""``llm-jax predict``: a label and its probability for each text, from a classifier; or a
text-to-text (seq2seq) run's output for each text, through the run's input template."""

from __future__ import annotations

import os

from llm_jax.cli import args as args_lib
from llm_jax.cli.evaluate import CHECKPOINTS
from llm_jax.errors import UsageError


def add(sub) -> None:
  pr = sub.add_parser('predict', help='label and probability for each text, from a '
                      'classifier workdir')
  pr.add_argument('--workdir', required=True)
  pr.add_argument('--text', action='append', default=[], help='a text (repeatable)')
  pr.add_argument('--input', default='', help='a file of texts, one per line')
  pr.add_argument('--checkpoint', default='auto', choices=CHECKPOINTS,
                  help='auto: the best (train.select_metric) where kept, else the latest')
  pr.add_argument('--beams', type=int, default=1,
                  help='text-to-text runs: beam search of this width (1: greedy)')
  pr.set_defaults(fn=run)


def run(args, overrides) -> None:
  from llm_jax import workdir
  from llm_jax.data import sources
  from llm_jax.inference import classify
  args_lib.refuse_overrides('predict', overrides)
  texts = list(args.text)
  if args.input:
    if not os.path.isfile(args.input):
      raise UsageError(f'--input {args.input} does not exist')
    lines = [line for line in sources.read_text(args.input).split('\n') if line.strip()]
    if not lines:
      raise UsageError(f'--input {args.input} holds no text; give a file with one text per '
                       'line')
    texts += lines
  if not texts:
    raise UsageError('give --text "..." (repeatable) or --input FILE (one text per line)')
  trained = workdir.load(args.workdir, args.checkpoint)
  if trained.task.reads == 'text2text':
    from llm_jax.inference import text as text_lib
    outputs = text_lib.predict_seq2seq(trained.model, trained.params, trained.tokenizer,
                                       trained.config, texts, args.beams)
    for text, output in zip(texts, outputs):
      print(f'{output}\t{text}')
    return
  for text, (label, prob) in zip(texts, classify.labels(trained, texts)):
    print(f'{label}\t{prob:.4f}\t{text}')
