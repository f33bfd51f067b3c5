"""Chat templates: conversations rendered by a checkpoint's own Jinja template, exactly as
``transformers``' ``apply_chat_template`` renders them, and cut into the pieces an
instruction-tuning loss trains on or skips.

Templates come from the Hub and are untrusted code: they run in Jinja's immutable sandbox with
transformers' settings (``trim_blocks``, ``lstrip_blocks``, loop controls) and the globals
templates expect (``raise_exception``, ``strftime_now``, a ``tojson`` that does not escape HTML).
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Mapping, Sequence

from llm_jax.errors import UsageError

Message = Mapping[str, str]
ROLES = ('system', 'user', 'assistant')


@functools.cache
def compile_template(source: str):
  import jinja2
  import jinja2.ext
  from jinja2.sandbox import ImmutableSandboxedEnvironment

  def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)

  def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)

  env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                      extensions=[jinja2.ext.loopcontrols])
  env.filters['tojson'] = tojson
  env.globals['raise_exception'] = raise_exception
  env.globals['strftime_now'] = lambda fmt: datetime.datetime.now().strftime(fmt)
  try:
    return env.from_string(source)
  except jinja2.exceptions.TemplateSyntaxError as e:
    raise UsageError(f'chat template line {e.lineno}: {e.message}') from None


def special_text(tokenizer) -> dict[str, str]:
  """``bos_token``, ``eos_token`` ... as the tokenizer spells them, which templates read."""
  spelled = {i: text for text, i in tokenizer.special_strings().items()}
  return {f'{name}_token': spelled[i] for name, i in tokenizer.special.items() if i in spelled}


def render(template: str, messages: Sequence[Message], special: Mapping[str, str], *,
           add_generation_prompt: bool = False) -> str:
  """The conversation as the template spells it; ``special`` maps ``bos_token``, ``eos_token``
  ... to their strings, which templates read."""
  import jinja2
  try:
    return compile_template(template).render(
        messages=[dict(m) for m in messages], tools=None, documents=None,
        add_generation_prompt=add_generation_prompt, **special)
  except jinja2.exceptions.TemplateError as e:
    raise UsageError(f'the chat template refused the conversation: {e}') from None


def pieces(template: str, messages: Sequence[Message], special: Mapping[str, str],
           train_all: bool = False) -> list[tuple[str, bool]]:
  """The rendered conversation as (text, trained) pieces: each assistant turn, as the
  template closes it (its end-of-turn marker included, so that the model learns to stop), is
  trained; the text before it (system and user turns, the template's markers and the
  generation prompt) is not, unless ``train_all``.

  Each assistant turn is found by rendering the conversation up to it with the generation
  prompt and then with the turn: the difference is the turn. A template that renders earlier
  turns differently once later ones follow cannot be cut this way and is refused.
  """
  out, done = [], ''
  for i, message in enumerate(messages):
    if message.get('role') != 'assistant':
      continue
    prompt = render(template, messages[:i], special, add_generation_prompt=True)
    full = render(template, messages[:i + 1], special)
    if not prompt.startswith(done) or not full.startswith(prompt):
      raise UsageError(f'the chat template renders turn {i} differently once later turns '
                       'follow, so the responses cannot be cut out of the conversation; give '
                       'another template (sft.chat_template)')
    out += [(prompt[len(done):], train_all), (full[len(prompt):], True)]
    done = full
  rest = render(template, messages, special)[len(done):]
  if rest:
    out.append((rest, train_all))
  if not any(trained for _, trained in out):
    raise UsageError('a conversation holds no assistant turn to train on')
  return [(text, trained) for text, trained in out if text]


def messages_of(record: Mapping, where: str) -> list[dict[str, str]]:
  """A JSONL record's conversation: ``messages`` (role/content dicts), or ``prompt`` and
  ``response`` (one user turn and its answer, after an optional ``system``)."""
  if 'messages' in record:
    messages = record['messages']
    if not isinstance(messages, list) or not all(
        isinstance(m, dict) and m.get('role') in ROLES and isinstance(m.get('content'), str)
        for m in messages):
      raise UsageError(f'{where}: "messages" must be a list of {{"role": one of {ROLES}, '
                       '"content": text}')
    return [{'role': m['role'], 'content': m['content']} for m in messages]
  if isinstance(record.get('prompt'), str) and isinstance(record.get('response'), str):
    system = [{'role': 'system', 'content': record['system']}] if record.get('system') else []
    return system + [{'role': 'user', 'content': record['prompt']},
                     {'role': 'assistant', 'content': record['response']}]
  raise UsageError(f'{where}: a chat record needs "messages", or "prompt" and "response" '
                   f'(it has {", ".join(sorted(record)) or "no fields"})')
