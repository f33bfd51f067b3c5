"""``llm-jax generate``: sample text from a decoder workdir, answer prompts as a chat model, or
decode an encoder-decoder's (T5's) output for each input.

One prompt (and one sample) streams to the terminal as it is drawn; several prompts
(``--prompt`` repeated, or ``--input`` with one per line or JSONL with a "prompt" field) run
as one ragged batch, each row stopping at EOS or a ``--stop`` string. ``--output`` writes
JSONL records of prompt and completion. An encoder-decoder reads each prompt as its input and
decodes to EOS (greedy, sampled, or ``--beams N``), printing the output alone.
"""

from __future__ import annotations

import json
import sys

from llm_jax.cli import args as args_lib
from llm_jax.errors import UsageError

STARTS = ('auto', 'none', 'eos', 'bos')


def add(sub) -> None:
  g = sub.add_parser('generate', help='sample text from a trained workdir')
  g.add_argument('--workdir', required=True,
                 help='a workdir of llm-jax train or a directory of convert --from-hf')
  g.add_argument('--prompt', action='append', help='repeat for a batch (default: a newline)')
  g.add_argument('--input', help='prompts, one per line, or JSONL records with "prompt"')
  g.add_argument('--output', help='write JSONL records of prompt and completion here')
  g.add_argument('--chat', action='store_true',
                 help='render each prompt as a user turn through the chat template')
  g.add_argument('--chat-template', default='', help='a .jinja file (default: the tokenizer\'s)')
  g.add_argument('--stop', action='append', default=[],
                 help='stop at this string (repeatable); EOS always stops')
  g.add_argument('--start', choices=STARTS, default='auto',
                 help='token before each prompt; auto: EOS for a model trained here, whose '
                 'documents start after one, nothing for an imported one')
  g.add_argument('--max-new-tokens', type=int, default=200)
  g.add_argument('--temperature', type=float, default=0.8, help='0 for greedy decoding')
  g.add_argument('--top-k', type=int, default=0, help='0 keeps every token')
  g.add_argument('--top-p', type=float, default=1.0)
  g.add_argument('--beams', type=int, default=1,
                 help='encoder-decoders: beam search of this width (1: greedy or sampled)')
  g.add_argument('--length-penalty', type=float, default=1.0,
                 help='beam scores are log-probability / length ** this (Hugging Face\'s)')
  g.add_argument('--num-samples', type=int, default=1)
  g.add_argument('--seed', type=int, default=0)
  g.set_defaults(fn=run)


def read_prompts(path: str) -> list[str]:
  with open(path, encoding='utf-8') as f:
    lines = [line.rstrip('\n') for line in f if line.strip()]
  prompts = []
  for n, line in enumerate(lines, 1):
    if line.lstrip().startswith('{'):
      try:
        prompts.append(json.loads(line)['prompt'])
      except (json.JSONDecodeError, KeyError, TypeError):
        raise UsageError(f'{path}:{n}: expected a JSON object with a "prompt" string') from None
    else:
      prompts.append(line.replace('\\n', '\n'))
  if not prompts:
    raise UsageError(f'{path} holds no prompt')
  return prompts


def run(args, overrides) -> None:
  from llm_jax import workdir
  from llm_jax.inference import text
  args_lib.refuse_overrides('generate', overrides)
  trained = workdir.load(args.workdir)
  kind = trained.config.model.kind
  if kind not in ('decoder', 'encoder_decoder'):
    raise UsageError(f'{args.workdir} holds a {kind} model; generate samples from decoders '
                     'and encoder-decoders')
  seq2seq = kind == 'encoder_decoder'
  if seq2seq and not (args.prompt or args.input):
    raise UsageError('an encoder-decoder decodes an input: give --prompt TEXT or --input FILE')
  prompts = (read_prompts(args.input) if args.input else args.prompt or ['\n'])
  prompts = [p for p in prompts for _ in range(args.num_samples)]
  tokenizer = trained.tokenizer
  start = args.start
  if start == 'auto':
    start = 'none' if trained.imported or args.chat or seq2seq else 'eos'
  if start != 'none' and start not in tokenizer.special:
    if args.start != 'auto':
      raise UsageError(f'--start={start}: the {tokenizer.kind} tokenizer has no {start} token')
    start = 'none'
  chat_template = ''
  if args.chat_template:
    with open(args.chat_template, encoding='utf-8') as f:
      chat_template = f.read()
  options = dict(max_new_tokens=args.max_new_tokens, stop=args.stop, as_chat=args.chat,
                 chat_template=chat_template, temperature=args.temperature, top_k=args.top_k,
                 top_p=args.top_p, seed=args.seed,
                 start_id=None if start == 'none' else tokenizer.special[start])
  if seq2seq:
    options.update(beams=args.beams, length_penalty=args.length_penalty)
  elif args.beams > 1:
    raise UsageError('--beams searches an encoder-decoder\'s outputs; sample a decoder '
                     'greedily (--temperature 0) or at a temperature')
  if len(prompts) == 1 and not args.output and not seq2seq:
    if not args.chat:
      print(prompts[0], end='', flush=True)
    for piece in text.stream(trained.model, trained.params, tokenizer, prompts[0], **options):
      print(piece, end='', flush=True)
    print()
    return
  completions = text.complete(trained.model, trained.params, tokenizer, prompts, **options)
  if args.output:
    from llm_jax import fileio
    fileio.write_atomic(args.output, ''.join(
        json.dumps({'prompt': p, 'completion': c}, ensure_ascii=False) + '\n'
        for p, c in zip(prompts, completions)))
    print(f'{len(prompts)} completions -> {args.output}', file=sys.stderr)
    return
  for i, (prompt, completion) in enumerate(zip(prompts, completions)):
    print(f'--- sample {i + 1}')
    print(completion if args.chat or seq2seq else prompt + completion)
