"""Text in, text out: prompts (or chat turns through the model's chat template) to completions,
cut at EOS, at the end-of-turn token or at any stop string; and a token-by-token stream for
the terminal.

An encoder-decoder (T5) reads each prompt as its input (EOS appended, as it was trained) and
decodes from its start token until EOS, greedily, by sampling, or by beam search.

The stop tokens are the tokenizer's EOS and, for a chat prompt, any of ``stop`` that is one
token's spelling (``<|im_end|>``); other stop strings cut the decoded text at their first
occurrence, which is what stopping there would have produced (later tokens never change
earlier ones).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import jax
import numpy as np

from llm_jax.data import chat, seq2seq, tokenizers
from llm_jax.errors import UsageError
from llm_jax.inference import generate


def prompt_text(tokenizer: tokenizers.Tokenizer, prompt: str, *, chat_template: str = '',
                as_chat: bool = False) -> str:
  """The prompt as the model reads it: with ``as_chat``, one user turn rendered by the chat
  template (``chat_template``, else the tokenizer's) up to the assistant's turn."""
  if not as_chat:
    return prompt
  template = chat_template or tokenizer.chat_template
  if not template:
    raise UsageError(f'--chat needs a chat template, and the {tokenizer.kind} tokenizer has '
                     'none: give --chat-template FILE.jinja')
  return chat.render(template, [{'role': 'user', 'content': prompt}],
                     chat.special_text(tokenizer), add_generation_prompt=True)


def prompt_ids(tokenizer: tokenizers.Tokenizer, prompt: str, chat_template: str,
               as_chat: bool, start_id: int | None) -> np.ndarray:
  ids = tokenizer.encode_with_specials(prompt_text(tokenizer, prompt,
                                                   chat_template=chat_template, as_chat=as_chat))
  return ids if start_id is None else np.concatenate([[start_id], ids]).astype(np.int32)


def stop_ids(tokenizer: tokenizers.Tokenizer, stop: Sequence[str]) -> tuple[int, ...]:
  spelled = tokenizer.special_strings()
  ids = {spelled[s] for s in stop if s in spelled}
  if 'eos' in tokenizer.special:
    ids.add(tokenizer.special['eos'])
  return tuple(sorted(ids))


def cut(text: str, stop: Sequence[str]) -> str:
  """``text`` up to the first of the ``stop`` strings."""
  ends = [text.find(s) for s in stop if s and s in text]
  return text[:min(ends)] if ends else text


def decode_seq2seq(model, params, inputs: Sequence[np.ndarray], max_new_tokens: int, *,
                   eos_id: int, pad_id: int = 0, beams: int = 1, length_penalty: float = 1.0,
                   temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
                   seed: int = 0) -> list[np.ndarray]:
  """Each input's decoded tokens (one padded batch), cut before EOS. T5 starts decoding from
  its pad id; ``beams`` > 1 searches (greedy otherwise, or sampling at a temperature)."""
  longest = max(len(ids) for ids in inputs)
  batch = np.full((len(inputs), longest), pad_id, np.int32)
  segments = np.zeros((len(inputs), longest), np.int32)
  for r, ids in enumerate(inputs):
    batch[r, :len(ids)], segments[r, :len(ids)] = ids, 1
  if beams > 1:
    out = generate.beam_seq2seq(model, params, batch, max_new_tokens, beams=beams,
                                eos_id=eos_id, input_segment_ids=segments, start_id=pad_id,
                                length_penalty=length_penalty)
  else:
    out = generate.generate_seq2seq(model, params, batch, max_new_tokens, jax.random.key(seed),
                                    input_segment_ids=segments, start_id=pad_id,
                                    stop_ids=(eos_id,), temperature=temperature, top_k=top_k,
                                    top_p=top_p)
  cut_rows = []
  for row in out:
    ends = np.flatnonzero(row == eos_id)
    cut_rows.append(row[:ends[0]] if len(ends) else row)
  return cut_rows


def complete(model, params, tokenizer: tokenizers.Tokenizer, prompts: Sequence[str], *,
             max_new_tokens: int = 64, stop: Sequence[str] = (), as_chat: bool = False,
             chat_template: str = '', start_id: int | None = None, temperature: float = 0.0,
             top_k: int = 0, top_p: float = 1.0, seed: int = 0, beams: int = 1,
             length_penalty: float = 1.0) -> list[str]:
  """The completion of each prompt (one batch, any lengths), greedy unless a temperature is
  given; ``start_id`` (EOS for a decoder trained here, whose documents start after one)
  goes before each prompt. An encoder-decoder answers each prompt as its input, and can
  search ``beams`` hypotheses (``length_penalty`` as Hugging Face's)."""
  if model.cfg.kind == 'encoder_decoder':
    if as_chat:
      raise UsageError('--chat renders a chat template for a decoder; an encoder-decoder '
                       'reads the prompt as its input')
    new = decode_seq2seq(model, params, seq2seq.inputs(tokenizer, prompts), max_new_tokens,
                         eos_id=tokenizer.special['eos'], pad_id=tokenizer.special.get('pad', 0),
                         beams=beams, length_penalty=length_penalty, temperature=temperature,
                         top_k=top_k, top_p=top_p, seed=seed)
    return [cut(tokenizer.decode(ids), stop) for ids in new]
  if beams > 1:
    raise UsageError('beam search decodes encoder-decoders (T5); sample a decoder greedily or '
                     'at a temperature')
  encoded = [prompt_ids(tokenizer, p, chat_template, as_chat, start_id) for p in prompts]
  new = generate.complete(model, params, encoded, max_new_tokens, jax.random.key(seed),
                          stop_ids=stop_ids(tokenizer, stop), temperature=temperature,
                          top_k=top_k, top_p=top_p)
  return [cut(tokenizer.decode(ids), stop) for ids in new]


def answer_accuracy(model, params, tokenizer: tokenizers.Tokenizer,
                    examples: Sequence[tuple[np.ndarray, str]], batch_size: int = 64
                    ) -> dict[str, float]:
  """Greedy answers to (prompt ids, expected answer) examples, in batches, each stopping at
  EOS; the fraction whose text, stripped, equals the expected answer's."""
  longest = max(len(tokenizer.encode(answer)) for _, answer in examples)
  right = 0
  for start in range(0, len(examples), batch_size):
    chunk = examples[start:start + batch_size]
    new = generate.complete(model, params, [ids for ids, _ in chunk], longest + 2,
                            jax.random.key(0), stop_ids=stop_ids(tokenizer, ()),
                            temperature=0.0)
    right += sum(tokenizer.decode(ids).strip() == answer.strip()
                 for ids, (_, answer) in zip(new, chunk))
  return {'answer_accuracy': right / len(examples), 'answers': float(len(examples))}


def predict_seq2seq(model, params, tokenizer: tokenizers.Tokenizer,
                    config, texts: Sequence[str], beams: int = 1) -> list[str]:
  """A text-to-text run's output for each text: the text put into its ``seq2seq.input``
  template and cut to ``train.seq_len``, as training read it, decoded to EOS."""
  s2s = config.seq2seq
  inputs = seq2seq.inputs(tokenizer, [s2s.input.format(text=t, text_pair='') for t in texts],
                          config.train.seq_len)
  new = decode_seq2seq(model, params, inputs, s2s.target_len, eos_id=tokenizer.special['eos'],
                       pad_id=tokenizer.special.get('pad', 0), beams=beams)
  return [tokenizer.decode(ids) for ids in new]


def seq2seq_scores(model, params, tokenizer: tokenizers.Tokenizer,
                   examples: Sequence[tuple[np.ndarray, str]], max_new_tokens: int,
                   batch_size: int = 64, beams: int = 1, length_penalty: float = 1.0,
                   labels: Sequence[str] = ()) -> dict[str, float]:
  """Generated targets of (input ids, expected target) examples against the expected:
  exact match (stripped; with ``labels``, the label words, the accuracy of a text-to-text
  classifier, and how many outputs are no label word at all), and sacrebleu's corpus BLEU and
  chrF for free text."""
  import sacrebleu
  outputs = []
  for start in range(0, len(examples), batch_size):
    chunk = examples[start:start + batch_size]
    new = decode_seq2seq(model, params, [ids for ids, _ in chunk], max_new_tokens,
                         eos_id=tokenizer.special['eos'], pad_id=tokenizer.special.get('pad', 0),
                         beams=beams, length_penalty=length_penalty)
    outputs += [tokenizer.decode(ids).strip() for ids in new]
  expected = [answer.strip() for _, answer in examples]
  out = {'answer_accuracy': float(np.mean([o == e for o, e in zip(outputs, expected)])),
         'answers': float(len(examples)),
         'bleu': sacrebleu.corpus_bleu(outputs, [expected]).score,
         'chrf': sacrebleu.corpus_chrf(outputs, [expected]).score}
  if labels:
    words = {w.strip() for w in labels}
    out['not_a_label'] = float(np.mean([o not in words for o in outputs]))
  return out


def stream(model, params, tokenizer: tokenizers.Tokenizer, prompt: str, *,
           max_new_tokens: int = 64, stop: Sequence[str] = (), as_chat: bool = False,
           chat_template: str = '', start_id: int | None = None, temperature: float = 0.0,
           top_k: int = 0, top_p: float = 1.0, seed: int = 0) -> Iterator[str]:
  """The completion of one prompt in pieces as they are decoded: what ``complete`` returns,
  joined. Text that could begin a stop string is held back until it cannot. Past the model's
  context (where the window slides and the cache cannot serve) it comes in one piece."""
  ids = prompt_ids(tokenizer, prompt, chat_template, as_chat, start_id)
  if len(ids) + max_new_tokens > model.cfg.max_len:
    yield complete(model, params, tokenizer, [prompt], max_new_tokens=max_new_tokens,
                   stop=stop, as_chat=as_chat, chat_template=chat_template, start_id=start_id,
                   temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)[0]
    return
  hold = max((len(s) for s in stop), default=1) - 1
  new, shown = [], 0
  for token in generate.stream(model, params, ids, max_new_tokens, jax.random.key(seed),
                               stop_ids=stop_ids(tokenizer, stop), temperature=temperature,
                               top_k=top_k, top_p=top_p):
    new.append(token)
    text = tokenizer.decode(new)
    if cut(text, stop) != text:
      yield cut(text, stop)[shown:]
      return
    safe = len(text) - hold if not text.endswith('\ufffd') else text.rfind('\ufffd')
    if safe > shown:
      yield text[shown:safe]
      shown = safe
  text = cut(tokenizer.decode(new), stop)
  if len(text) > shown:
    yield text[shown:]
