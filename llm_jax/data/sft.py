"""Instruction-tuning examples: a record as token ids and which of them the loss trains on.

A record is a conversation (a ``chat`` JSONL line: ``messages``, or ``prompt`` and
``response``) or a labelled example, which becomes one: ``sft.prompt`` formats the user turn
from its text and ``sft.responses`` (default: the label names) gives the answer. It is then
rendered one of two ways:

* ``plain``: EOS, each turn's text in order, EOS after each assistant turn. For a decoder
  pretrained here, whose documents begin after EOS, and prompts such as ``Review: ...
  Sentiment:`` with answers `` positive``.
* ``chat``: the checkpoint's chat template (``sft.chat_template``, else the tokenizer's own),
  as transformers renders it, special tokens spelled out by the template becoming their ids.

The loss trains on the assistant turns (with their EOS or end-of-turn marker, so that the
model learns to stop) or, with ``sft.loss_on='all'``, on everything. Each turn's text is
encoded on its own, so the prompt tokens a model trains on are those it is prompted with.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping

import ml_collections
import numpy as np

from llm_jax.data import chat, sources, tokenizers
from llm_jax.errors import UsageError

TEMPLATES = ('plain', 'chat')
LOSS_ON = ('responses', 'all')


def template_of(sft: ml_collections.ConfigDict, tokenizer: tokenizers.Tokenizer) -> str:
  """The chat template a ``chat`` run renders with: the file ``sft.chat_template``, else the
  tokenizer's."""
  if sft.chat_template:
    if not os.path.isfile(sft.chat_template):
      raise UsageError(f'sft.chat_template={sft.chat_template} is not a file; give a .jinja '
                       'chat template or leave it empty for the tokenizer\'s')
    with open(sft.chat_template, encoding='utf-8') as f:
      return f.read()
  if not tokenizer.chat_template:
    raise UsageError(f'sft.template="chat" but the {tokenizer.kind} tokenizer has no chat '
                     'template: set sft.chat_template to a .jinja file or sft.template="plain"')
  return tokenizer.chat_template


def encoder(sft: ml_collections.ConfigDict, tokenizer: tokenizers.Tokenizer, text_field: str,
            label_names: tuple[str, ...], *, for_answers: bool = False
            ) -> Callable[[Mapping], tuple[np.ndarray, np.ndarray]]:
  """record -> (ids, trained): ``trained[i]`` is 1 where token ``i`` is one the loss
  predicts. ``for_answers``: record -> (the ids up to its last answer, that answer's text),
  the prompt a model answers at evaluation."""
  train_all = sft.loss_on == 'all'
  answers = tuple(sft.responses) or label_names
  if sft.template == 'chat':
    template, special = template_of(sft, tokenizer), chat.special_text(tokenizer)

    def parts(messages):
      return [(tokenizer.encode_with_specials(text), trained)
              for text, trained in chat.pieces(template, messages, special, train_all)]
  else:
    eos = np.array([tokenizer.special['eos']], np.int32)

    def parts(messages):
      out = [(eos, train_all)]
      for message in messages:
        reply = message['role'] == 'assistant'
        out.append((tokenizer.encode(message['content']), reply or train_all))
        if reply:
          out.append((eos, True))
      return out

  def conversation(record):
    if 'label' not in record:
      return json.loads(sources.text_of(record))
    label = int(record['label'])
    if label >= len(answers):
      raise UsageError(f'label {label} has no answer: sft.responses holds {len(answers)}')
    return [{'role': 'user', 'content': sft.prompt.format(text=sources.text_of(record,
                                                                                text_field))},
            {'role': 'assistant', 'content': answers[label]}]

  def encode(record):
    encoded = parts(conversation(record))
    ids = np.concatenate([ids for ids, _ in encoded]).astype(np.int32)
    trained = np.concatenate([np.full(len(ids), t, np.int32) for ids, t in encoded])
    return ids, trained

  def prompt_and_answer(record):
    messages = conversation(record)
    if messages[-1]['role'] != 'assistant':
      raise UsageError('a conversation to answer must end with the assistant\'s turn')
    if sft.template == 'chat':
      prompt = chat.render(template, messages[:-1], special, add_generation_prompt=True)
      return tokenizer.encode_with_specials(prompt), messages[-1]['content']
    encoded = parts(messages)[:-2]  # the answer and its EOS are the last two parts
    return np.concatenate([ids for ids, _ in encoded]).astype(np.int32), messages[-1]['content']

  return prompt_and_answer if for_answers else encode


def errors(config: ml_collections.ConfigDict) -> list[str]:
  sft, data = config.sft, config.data
  out = []
  if sft.template not in TEMPLATES:
    out.append(f'sft.template={sft.template!r} is not one of {TEMPLATES}')
  if sft.loss_on not in LOSS_ON:
    out.append(f'sft.loss_on={sft.loss_on!r} is not one of {LOSS_ON}')
  if '{text}' not in sft.prompt:
    out.append(f'sft.prompt={sft.prompt!r} must hold {{text}}, where the example goes')
  if data.cross_document:
    out.append('data.cross_document=true would let examples attend to each other; '
               'instruction tuning keeps each to itself')
  formats = sources.NAMED.get(data.corpus, {}).get('format', data.format)
  if formats == 'text' and not data.corpus.startswith('tfds:'):
    out.append('objective="sft" reads conversations (data.format="chat": JSONL of '
               '"messages" or "prompt"/"response") or labelled examples (tsv, csv, jsonl, '
               'sst2, sentiment)')
  return out
