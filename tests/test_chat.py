"""Hugging Face tokenizers and chat templates as transformers runs them: tokenizer.json files of
both kinds open checkpoints use (byte-level BPE: GPT-2, Llama 3, Qwen; SentencePiece-BPE:
Llama 2, Mistral, Gemma) are trained here on a multilingual sample and saved by transformers
with special tokens and a chat template; ids, special tokens and rendered conversations must
equal AutoTokenizer's."""

import numpy as np
import pytest
import transformers
from tokenizers import ByteLevelBPETokenizer
from tokenizers.implementations import SentencePieceBPETokenizer

from llm_jax.data import chat, tokenizers
from llm_jax.errors import UsageError

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
LLAMA2 = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}"
          "[INST] {{ m['content'] | trim }} [/INST]{% elif m['role'] == 'assistant' %}"
          " {{ m['content'] | trim }} {{ eos_token }}{% else %}"
          "{{ raise_exception('only user and assistant roles are supported') }}{% endif %}"
          "{% endfor %}")
CONVERSATION = [{'role': 'system', 'content': 'Answer in one word.'},
                {'role': 'user', 'content': '这部电影怎么样？'},
                {'role': 'assistant', 'content': 'positive'},
                {'role': 'user', 'content': 'And this café?  '},
                {'role': 'assistant', 'content': 'négatif 🤖'}]


def sample_texts():
  chinese = ('大型语言模型的微调：先在海量文本上预训练，再用指令数据进行监督微调（SFT），'
             '只在回答的词元上计算损失。分词器把文本切成子词，特殊符号标记对话的开始与结束。')
  return [chinese, 'The café costs 5€ — naïve résumé.', 'Привет, мир! Ελληνικά.',
          'emoji 🤖🚀 and  double  spaces\ttabs\nnew lines', 'नमस्ते دنیا 12345']


@pytest.fixture(scope='module')
def saved(tmp_path_factory):
  """(directory, AutoTokenizer) for a byte-level BPE and a SentencePiece-BPE tokenizer."""
  texts = sample_texts() * 3
  root = tmp_path_factory.mktemp('hf_tokenizers')
  byte_level = ByteLevelBPETokenizer()
  byte_level.train_from_iterator(texts, vocab_size=600, special_tokens=[
      '<|pad|>', '<|im_start|>', '<|im_end|>'])
  spbpe = SentencePieceBPETokenizer()
  spbpe.train_from_iterator(texts, vocab_size=500, special_tokens=['<unk>', '<s>', '</s>'])
  out = {}
  for name, backend, specials, template in (
      ('byte_level', byte_level, dict(eos_token='<|im_end|>', pad_token='<|pad|>'), CHATML),
      ('sentencepiece_bpe', spbpe, dict(bos_token='<s>', eos_token='</s>', unk_token='<unk>'),
       LLAMA2)):
    transformers.PreTrainedTokenizerFast(tokenizer_object=backend._tokenizer,
                                         chat_template=template,
                                         **specials).save_pretrained(root / name)
    out[name] = (root / name, transformers.AutoTokenizer.from_pretrained(root / name))
  return out


@pytest.mark.parametrize('kind', ['byte_level', 'sentencepiece_bpe'])
def test_ids_and_special_tokens_equal_autotokenizers(saved, kind):
  directory, reference = saved[kind]
  ours = tokenizers.from_file(str(directory))
  assert ours.kind == 'hf' and ours.vocab_size == len(reference)
  for name in ('bos', 'eos', 'pad', 'unk'):
    assert ours.special.get(name) == getattr(reference, f'{name}_token_id'), name
  texts = sample_texts()
  for text, ids in zip(texts, ours.encode_batch(texts)):
    assert ids.tolist() == reference(text, add_special_tokens=False).input_ids
    assert ours.decode(ids) == reference.decode(ids.tolist())
  again = tokenizers.load(str(_saved(ours, directory.parent / f'{kind}_copy')))
  assert again.special == ours.special and again.chat_template == ours.chat_template


def _saved(tokenizer, path):
  tokenizer.save(str(path))
  return path


@pytest.mark.parametrize('kind', ['byte_level', 'sentencepiece_bpe'])
def test_chat_templates_render_as_transformers_renders_them(saved, kind):
  directory, reference = saved[kind]
  ours = tokenizers.from_file(str(directory / 'tokenizer.json'))
  conversation = CONVERSATION if kind == 'byte_level' else CONVERSATION[1:]
  special = chat.special_text(ours)
  for turns, prompt in ((conversation, False), (conversation[:-1], True)):
    text = chat.render(ours.chat_template, turns, special, add_generation_prompt=prompt)
    assert text == reference.apply_chat_template(turns, tokenize=False,
                                                 add_generation_prompt=prompt)
    assert ours.encode_with_specials(text).tolist() == \
        reference(text, add_special_tokens=False).input_ids
  with pytest.raises(UsageError, match='refused the conversation: only user and assistant'):
    chat.render(saved['sentencepiece_bpe'][1].chat_template, CONVERSATION, special)


def test_pieces_train_the_assistant_turns_and_their_end_markers(saved):
  ours = tokenizers.from_file(str(saved['byte_level'][0]))
  pieces = chat.pieces(ours.chat_template, CONVERSATION, chat.special_text(ours))
  assert [text for text, trained in pieces if trained] == [
      'positive<|im_end|>\n', 'négatif 🤖<|im_end|>\n']
  assert ''.join(text for text, _ in pieces) == chat.render(
      ours.chat_template, CONVERSATION, chat.special_text(ours))
  assert pieces[0] == ('<|im_start|>system\nAnswer in one word.<|im_end|>\n<|im_start|>user\n'
                       '这部电影怎么样？<|im_end|>\n<|im_start|>assistant\n', False)
  everything = chat.pieces(ours.chat_template, CONVERSATION, {}, train_all=True)
  assert all(trained for _, trained in everything)
  dropping = "{% for m in messages[-2:] %}{{ m['content'] }}{% endfor %}"  # forgets old turns
  with pytest.raises(UsageError, match='renders turn 2 differently'):
    chat.pieces(dropping, CONVERSATION, {})


def test_sentencepiece_reads_its_special_tokens_spelled_out():
  sp = tokenizers.SentencePieceTokenizer.train(sample_texts() * 5, 500)
  ids = sp.encode_with_specials('hi</s><s>hi')
  eos, bos = sp.special['eos'], sp.special['bos']
  np.testing.assert_array_equal(ids, np.concatenate([sp.encode('hi'), [eos, bos],
                                                     sp.encode('hi')]))


def test_chat_records_become_conversations():
  assert chat.messages_of({'prompt': 'p', 'response': 'r', 'system': 's'}, 'f:1') == [
      {'role': 'system', 'content': 's'}, {'role': 'user', 'content': 'p'},
      {'role': 'assistant', 'content': 'r'}]
  with pytest.raises(UsageError, match=r'f:3: a chat record needs "messages", or "prompt" and '
                                       r'"response" \(it has text\)'):
    chat.messages_of({'text': 'x'}, 'f:3')
  with pytest.raises(UsageError, match='f:4: "messages" must be a list'):
    chat.messages_of({'messages': [{'role': 'robot', 'content': 'x'}]}, 'f:4')
