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
  packing = task.packing(WORDS.special, 16, False)
  encode = sft.encoder(sft_section(), WORDS, '', ())
  rows = loader.packed(conversation_records(), lambda r: packing.frame(encode(r)),
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
  for record in conversation_records():
    ids, trained = encode(record)
    logits = model.apply({'params': params}, jnp.asarray(ids[None, :-1]))[0]
    log_probs = np.asarray(jax.nn.log_softmax(logits))
    nll += [-log_probs[i, ids[i + 1]] for i in range(len(ids) - 1) if trained[i + 1]]
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
