"""Instruction tuning: the loss is on response tokens only and packed examples never see each
other; an imported Hugging Face decoder is instruction-tuned with LoRA through its chat
template, evaluated, sampled with --chat and exported with the adapters merged."""

import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from llm_jax import config as config_lib
from llm_jax import models, parallel, tasks
from llm_jax.data import loader, sft, tokenizers
from llm_jax.models import TransformerConfig

WORDS = tokenizers.WordTokenizer.from_texts(['review good bad film is positive negative ok'])
EXAMPLES = [{'prompt': 'good film', 'response': 'positive'},
            {'prompt': 'bad film is bad', 'response': 'negative ok'},
            {'prompt': 'film', 'response': 'ok'}]


def sft_section(**fields) -> ml_collections.ConfigDict:
  section = config_lib.base().sft
  section.unlock()
  section.update(fields)
  return section


def conversation_records():
  return [{'text': json.dumps([{'role': 'user', 'content': e['prompt']},
                               {'role': 'assistant', 'content': e['response']}])}
          for e in EXAMPLES]


def test_plain_rendering_trains_the_response_and_its_eos():
  encode = sft.encoder(sft_section(), WORDS, '', ())
  ids, trained = encode(conversation_records()[1])
  eos = WORDS.special['eos']
  expected = [eos, *WORDS.encode('bad film is bad'), *WORDS.encode('negative ok'), eos]
  assert ids.tolist() == expected
  assert trained.tolist() == [0, 0, 0, 0, 0, 1, 1, 1]
  labelled = sft.encoder(sft_section(prompt='review {text} is', responses=('bad', 'good')),
                         WORDS, '', ('0', '1'))
  ids, trained = labelled({'text': b'film', 'label': 1})
  assert WORDS.decode(ids) == '<eos> review film is good <eos>'
  assert trained.tolist() == [0, 0, 0, 0, 1, 1]
  _, everything = sft.encoder(sft_section(loss_on='all'), WORDS, '', ())(
      conversation_records()[0])
  assert everything[1:].all()


@pytest.fixture(scope='module')
def packed_batch():
  """The three examples packed whole into one row of 16 (4, 7 and 3 targets)."""
  task = tasks.get('sft')
  config = config_lib.base()
  config.train.seq_len = 16
  packing = task.packing(WORDS.special, config)
  encode = sft.encoder(sft_section(), WORDS, '', ())
  rows = loader.packed(loader.documents(conversation_records(),
                                        lambda r: packing.frame(encode(r))),
                       packing.lengths, packing.finish, 1, 0, train=False, whole=packing.whole)
  return next(iter(rows))


@pytest.fixture(scope='module')
def lm():
  cfg = TransformerConfig(vocab_size=WORDS.vocab_size, d_model=32, num_heads=2, num_layers=2,
                          max_len=16, positions='rope', norm='rmsnorm', mlp='swiglu',
                          use_bias=False)
  model = models.build(cfg)
  return model, parallel.unbox(model.init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))
                               ['params'])


def test_response_only_loss_equals_a_hand_computation(packed_batch, lm):
  """The packed loss equals the mean NLL of the response tokens (and their EOS), each example
  run alone and unpadded."""
  model, params = lm
  assert packed_batch['segment_ids'].tolist()[0] == [1] * 4 + [2] * 7 + [3] * 3 + [0] * 2
  loss, metrics = tasks.bind('sft', WORDS.vocab_size, WORDS.special)(
      model, params, {k: jnp.asarray(v) for k, v in packed_batch.items()}, jax.random.key(0),
      False)
  nll = []
  encode = sft.encoder(sft_section(), WORDS, '', ())
  examples = [encode(record) for record in conversation_records()]
  alone = np.zeros((len(examples), 16), np.int32)  # each example in its own row, right-padded
  for row, (ids, _) in enumerate(examples):
    alone[row, :len(ids) - 1] = ids[:-1]
  log_probs = np.asarray(jax.nn.log_softmax(model.apply({'params': params}, alone)))
  for row, (ids, trained) in enumerate(examples):
    nll += [-log_probs[row, i, ids[i + 1]] for i in range(len(ids) - 1) if trained[i + 1]]
  assert float(metrics['tokens']) == len(nll) == 2 + 3 + 2
  np.testing.assert_allclose(float(loss), np.mean(nll), rtol=1e-5)


def test_packed_examples_never_attend_to_each_other(packed_batch, lm):
  model, params = lm
  batch = {k: jnp.asarray(v) for k, v in packed_batch.items()}

  def logits(inputs):
    return np.asarray(model.apply({'params': params}, inputs, batch['positions'],
                                  batch['segment_ids']))
  base = logits(batch['inputs'])
  changed = logits(batch['inputs'].at[0, 1].set((batch['inputs'][0, 1] + 1) % WORDS.vocab_size))
  np.testing.assert_array_equal(changed[0, 4:14], base[0, 4:14])  # the other two examples
  assert np.abs(changed[0, 1:4] - base[0, 1:4]).max() > 1e-4


def test_lora_adapts_the_decoder_and_starts_as_its_base(lm):
  model, _ = lm
  cfg = model.cfg
  adapted = models.build(cfg, models.LoraConfig(rank=2, targets=('attention/(query|value)$',)))
  tokens = jnp.asarray([[1, 2, 3, 4]])
  fresh = parallel.unbox(adapted.init(jax.random.key(1), tokens)['params'])
  assert 'lora' in fresh['decoder']['block_0']['attention']['query']
  assert 'lora' not in fresh['decoder']['block_0']['attention']['key']
  np.testing.assert_allclose(adapted.apply({'params': fresh}, tokens),
                             models.build(cfg).apply({'params': _base_of(fresh)}, tokens),
                             atol=1e-6)


def _base_of(params):
  if not isinstance(params, dict):
    return params
  return {k: _base_of(v) for k, v in params.items() if k != 'lora'}


PAIRS = {'sky': 'blue', 'grass': 'green', 'snow': 'white', 'coal': 'black', 'blood': 'red',
         'sun': 'yellow', 'sea': 'deep blue', 'night': 'dark'}
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def chat_jsonl(path, repeats):
  lines = [json.dumps({'messages': [{'role': 'user', 'content': f'colour of {thing}?'},
                                    {'role': 'assistant', 'content': colour}]})
           for _ in range(repeats) for thing, colour in PAIRS.items()]
  path.write_text('\n'.join(lines) + '\n')
  return str(path)


@pytest.fixture(scope='module')
def imported_qwen(tmp_path_factory):
  """A random tiny Qwen2 with a ChatML byte-level BPE tokenizer, saved as transformers saves
  them and converted in with ``llm-jax convert --from-hf``."""
  import torch
  import transformers
  from tokenizers import ByteLevelBPETokenizer

  from llm_jax import cli
  root = tmp_path_factory.mktemp('qwen')
  backend = ByteLevelBPETokenizer()
  texts = [f'colour of {t}? {c}' for t, c in PAIRS.items()] * 4 + ['user assistant system']
  backend.train_from_iterator(texts, vocab_size=300, special_tokens=[
      '<|endoftext|>', '<|im_start|>', '<|im_end|>'])
  tokenizer = transformers.PreTrainedTokenizerFast(
      tokenizer_object=backend._tokenizer, eos_token='<|im_end|>', pad_token='<|endoftext|>',
      chat_template=CHATML)
  torch.manual_seed(0)
  config = transformers.Qwen2Config(vocab_size=len(tokenizer), hidden_size=32,
                                    num_hidden_layers=2, num_attention_heads=4,
                                    num_key_value_heads=2, intermediate_size=64,
                                    max_position_embeddings=64, tie_word_embeddings=True,
                                    initializer_range=0.2)
  transformers.Qwen2ForCausalLM(config).save_pretrained(root / 'hf')
  tokenizer.save_pretrained(root / 'hf')
  cli.main(['convert', '--from-hf', str(root / 'hf'), '--out', str(root / 'ours')])
  return root


@pytest.mark.slow
def test_lora_instruction_tuning_of_an_imported_chat_model(imported_qwen, tmp_path, capsys):
  """Qwen2 in, LoRA SFT through its ChatML template (loss on the answers), the base weights
  bit-identical, answers generated with --chat, out again with the adapters merged: the
  exported checkpoint's logits equal the adapted model's."""
  import torch
  import transformers

  from llm_jax import cli, workdir
  from llm_jax.inference import text
  from llm_jax.workdir import imported
  ours = imported_qwen / 'ours'
  model_fields = json.loads((ours / imported.MODEL_CONFIG).read_text())
  run = tmp_path / 'run'
  cli.main(['train', f'--workdir={run}', '--config=configs/shakespeare_char.py',
            '--config.objective=sft', '--config.data.corpus=files', '--config.data.format=chat',
            '--config.data.batching=packed',
            f'--config.data.files.train={chat_jsonl(tmp_path / "train.jsonl", 4)}',
            f'--config.data.files.validation={chat_jsonl(tmp_path / "val.jsonl", 1)}',
            '--config.data.tokenizer=hf', f'--config.data.tokenizer_path={ours}/hf_tokenizer',
            '--config.sft.template=chat', f'--config.finetune.pretrained={ours}',
            '--config.finetune.lora_rank=8', '--config.finetune.freeze=lora',
            "--config.finetune.lora_targets=('attention/(query|value)$', 'mlp/wo$')",
            '--config.train.batch_size=8', '--config.train.seq_len=32', '--config.train.steps=60',
            '--config.train.log_every=20', '--config.train.eval_every=0',
            '--config.train.checkpoint_every=60', '--config.optim.lr=3e-2',
            '--config.optim.warmup_steps=5', '--config.optim.weight_decay=0.0'] +
           [f'--config.model.{k}={v if isinstance(v, str) else repr(v)}'
            for k, v in model_fields.items()])
  capsys.readouterr()
  losses = [r['loss'] for r in map(json.loads, (run / 'metrics.jsonl').read_text().splitlines())
            if r.get('split') == 'train']
  assert losses[-1] < 0.5 * losses[0]
  trained = workdir.load(str(run))
  base = imported.read(str(ours))[1]
  attention = trained.params['decoder']['block_1']['attention']
  np.testing.assert_array_equal(attention['query']['kernel'],
                                base['decoder']['block_1']['attention']['query']['kernel'])
  assert 'lora' in attention['query'] and 'lora' not in attention['key']

  cli.main(['eval', f'--workdir={run}', '--answers', '--json'])
  report = json.loads(capsys.readouterr().out)
  assert report['answers'] == len(PAIRS) and report['answer_accuracy'] >= 0.75
  answer_tokens = sum(len(trained.tokenizer.encode_with_specials(f'{c}<|im_end|>\n'))
                      for c in PAIRS.values())  # each answer, its end of turn and newline
  assert report['split'] == 'validation' and report['tokens'] == answer_tokens
  assert report['loss'] < 0.5 * losses[0] and report['accuracy'] > 0.9  # the answer tokens
  questions = [f'colour of {t}?' for t in PAIRS]
  answers = text.complete(trained.model, trained.params, trained.tokenizer, questions,
                          as_chat=True, max_new_tokens=6)
  right = sum(a == c for a, c in zip(answers, PAIRS.values()))
  assert right / len(PAIRS) == report['answer_accuracy'], answers
  streamed = ''.join(text.stream(trained.model, trained.params, trained.tokenizer, questions[0],
                                 as_chat=True, max_new_tokens=6))
  assert streamed == answers[0]
  cli.main(['generate', f'--workdir={run}', '--chat', '--prompt=colour of sky?',
            '--temperature=0', '--max-new-tokens=6'])
  assert capsys.readouterr().out == answers[0] + '\n'

  cli.main(['convert', '--to-hf', str(run), '--out', str(tmp_path / 'back')])
  hf_model = transformers.Qwen2ForCausalLM.from_pretrained(tmp_path / 'back').eval()
  reference = transformers.AutoTokenizer.from_pretrained(tmp_path / 'back')
  ids = np.asarray([trained.tokenizer.encode_with_specials(text.prompt_text(
      trained.tokenizer, questions[1], as_chat=True))])
  assert ids[0].tolist() == reference.apply_chat_template(
      [{'role': 'user', 'content': questions[1]}], add_generation_prompt=True,
      tokenize=True, return_dict=True)['input_ids']
  with torch.no_grad():
    theirs = hf_model(torch.from_numpy(ids)).logits.numpy()
  np.testing.assert_allclose(trained.model.apply({'params': trained.params}, ids), theirs,
                             atol=1e-5)
