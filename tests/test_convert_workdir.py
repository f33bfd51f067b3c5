"""``convert --to-hf`` on workdirs of ``llm-jax train``: classifiers (LoRA merged) and language
models, reloaded by ``transformers`` and compared in float32 on padded random rows."""

import json
import os

import jax
import numpy as np
import pytest
import torch
import transformers
from flax import traverse_util

from llm_jax import config as config_lib
from llm_jax import models, parallel, train, workdir
from llm_jax.convert import directories, trained
from llm_jax.convert.family import ConversionError
from llm_jax.data import batching, tokenizers
from llm_jax.inference import classify
from llm_jax.tasks import classification
from llm_jax.train import checks
from tests import hf_parity
from tests.conftest import REPO, write_labelled

pytestmark = pytest.mark.slow  # trains workdirs end to end

WORDS = {'neg': 'bad awful poor ugly dull', 'mid': 'plain usual okay fair so',
         'pos': 'good great fine nice lovely'}
# RoBERTa's special ids (<s> 0, <pad> 1, </s> 2, <unk> 3), which BERT does not mind
SPECIALS = ['[CLS]', '[PAD]', '[SEP]', '[UNK]', '[MASK]']
FAST = ['train.batch_size=8', 'train.seq_len=16', 'train.steps=4', 'train.log_every=2',
        'train.eval_every=0', 'train.checkpoint_every=4', 'train.full_eval=false',
        'optim.warmup_steps=1', 'optim.decay_steps=4']


@pytest.fixture(scope='module')
def labelled(tmp_path_factory):
  """Three labels in TSV files, and a WordPiece vocabulary of their words."""
  root = tmp_path_factory.mktemp('labelled')
  write_labelled(root, WORDS, {'train': 64, 'dev': 16}, 3, ('the', 'film'))
  for split in ('train', 'dev'):  # a second text column, for the pair classifier
    path = root / f'{split}.tsv'
    lines = [line.split('\t') for line in path.read_text().splitlines()]
    path.write_text(''.join(f'{t}\t{"text_b" if i == 0 else t.split()[0]}\t{y}\n'
                            for i, (t, y) in enumerate(lines)))
  vocab = SPECIALS + ['the', 'film'] + ' '.join(WORDS.values()).split()
  (root / 'vocab.txt').write_text('\n'.join(vocab) + '\n')
  return root


def classifier_config(root, *overrides):
  """A tiny classifier on a BERT body (pooler on)."""
  return checks.load(os.path.join(REPO, 'configs', 'bert.py:tiny'), [
      'objective=classification', 'data.corpus=files', f'data.files.train={root}/train.tsv',
      f'data.files.validation={root}/dev.tsv', 'data.format=tsv', 'data.header=true',
      "data.labels=('neg', 'mid', 'pos')", 'data.tokenizer=wordpiece',
      f'data.tokenizer_path={root}/vocab.txt', 'model.mlm_head=false', 'model.pooler=true',
      'model.d_model=32', 'model.num_heads=2', 'model.max_len=16', 'model.dropout=0.1',
      'optim.lr=3e-2'] + FAST + list(overrides))


def classifier(root, tmp_path_factory, *overrides):
  """A workdir of ``classifier_config`` trained for a few steps."""
  run = str(tmp_path_factory.mktemp('run'))
  train.run(classifier_config(root, *overrides), run, progress=False)
  return run


@pytest.fixture(scope='module')
def bert_run(labelled, tmp_path_factory):
  """A sentence-pair classifier: [CLS] text [SEP] text_b [SEP], token types 0/1."""
  return classifier(labelled, tmp_path_factory, 'data.text_pair_field=text_b')


@pytest.fixture(scope='module')
def lora_run(labelled, tmp_path_factory):
  """Adapters trained hard enough (scale 16, lr 0.1) to move the logits well past 1e-5."""
  return classifier(labelled, tmp_path_factory, 'finetune.lora_rank=2',
                    'finetune.lora_alpha=32', 'finetune.freeze=lora', 'optim.lr=0.1')


def to_hf(run, out):
  """``llm-jax convert --to-hf RUN --out OUT``'s summary line."""
  return directories.export_hf(str(run), str(out))


def padded_batch(loaded):
  return hf_parity.padded_batch(loaded.tokenizer.vocab_size, loaded.tokenizer.special['pad'])


def classifier_logits(model, params, ids, mask):
  batch = {'inputs': ids, 'attention_mask': mask}
  return np.asarray(classification.logits(model, params, batch))


def assert_same_logits(loaded, out, model_class, pairs: bool = False):
  """HF's logits (float32, eval) equal ours (no dropout) on padded rows, every label; with
  ``pairs``, rows of two segments (token types 0, then 1 from the fourth token)."""
  hf_model = model_class.from_pretrained(out, dtype=torch.float32).eval()
  ids, mask = padded_batch(loaded)
  types = {'token_types': (np.arange(ids.shape[1]) >= 4) * mask} if pairs else {}
  ours = np.asarray(classification.logits(loaded.model, loaded.params,
                                          {'inputs': ids, 'attention_mask': mask, **types}))
  theirs = hf_parity.torch_logits(hf_model, input_ids=ids, attention_mask=mask,
                                  **({'token_type_ids': types['token_types']} if pairs else {}))
  assert theirs.shape == ours.shape
  np.testing.assert_allclose(theirs, ours, rtol=0, atol=hf_parity.TOLERANCE)


def test_a_bert_classifier_is_written_as_bert_for_sequence_classification(bert_run, tmp_path):
  summary = to_hf(bert_run, tmp_path)
  assert summary == f'BertForSequenceClassification (step 4) -> {tmp_path}'
  loaded = workdir.load(bert_run)
  hf_config = json.loads((tmp_path / 'config.json').read_text())
  assert hf_config['architectures'] == ['BertForSequenceClassification']
  assert (hf_config['num_labels'], hf_config['problem_type']) == \
      (3, 'single_label_classification')
  assert hf_config['id2label'] == {'0': 'neg', '1': 'mid', '2': 'pos'}
  assert hf_config['label2id'] == {'neg': 0, 'mid': 1, 'pos': 2}
  assert_same_logits(loaded, tmp_path, transformers.BertForSequenceClassification, pairs=True)
  # the WordPiece tokenizer comes along and frames a pair as our classification batches do
  text, pair = 'lovely the film', 'good'
  theirs = transformers.AutoTokenizer.from_pretrained(tmp_path)(text, pair)
  special, encode = loaded.tokenizer.special, loaded.tokenizer.encode
  ours = batching.pad_classification([(encode(text), encode(pair))], 16, special['pad'],
                                     special['cls'], special['sep'])
  n = len(theirs['input_ids'])
  assert ours['inputs'][0, :n].tolist() == theirs['input_ids']
  assert ours['token_types'][0, :n].tolist() == theirs['token_type_ids']
  # llm-jax predict reads a pair as FIRST<TAB>SECOND, as the export scores it
  label, prob = classify.labels(loaded, [f'{text}\t{pair}'])[0]
  hf_model = transformers.BertForSequenceClassification.from_pretrained(tmp_path).eval()
  with torch.no_grad():
    probs = torch.softmax(hf_model(**{k: torch.tensor([v]) for k, v in theirs.items()}).logits,
                          -1)[0].numpy()
  assert label == ('neg', 'mid', 'pos')[int(probs.argmax())]
  np.testing.assert_allclose(prob, probs.max(), atol=1e-5)


def test_lora_adapters_are_merged_into_the_written_weights(lora_run, tmp_path):
  summary = to_hf(lora_run, tmp_path)
  assert summary.endswith('; LoRA adapters merged')
  loaded = workdir.load(lora_run)
  flat = traverse_util.flatten_dict(loaded.params, sep='/')
  b = [v for p, v in flat.items() if p.endswith('/lora/b')]
  assert b and all(np.abs(v).max() > 1e-3 for v in b)  # trained: merging changes the model
  ids, mask = padded_batch(loaded)
  unadapted = traverse_util.unflatten_dict(
      {p: v for p, v in flat.items() if '/lora/' not in p}, sep='/')
  without = classifier_logits(loaded.model.clone(lora=None), unadapted, ids, mask)
  adapted = classifier_logits(loaded.model, loaded.params, ids, mask)
  assert np.abs(without - adapted).max() > 1e-2
  assert_same_logits(loaded, tmp_path, transformers.BertForSequenceClassification)


def test_a_roberta_classifier_is_written_with_its_two_layer_head(labelled, tmp_path_factory,
                                                                 tmp_path):
  run = classifier(labelled, tmp_path_factory, 'model.position_offset=2', 'model.max_len=18')
  assert to_hf(run, tmp_path).startswith('RobertaForSequenceClassification')
  assert json.loads((tmp_path / 'config.json').read_text())['pad_token_id'] == 1
  assert_same_logits(workdir.load(run), tmp_path, transformers.RobertaForSequenceClassification)


def test_a_gpt_workdir_is_written_as_gpt2_lm_head_model(tiny_config, tmp_path):
  run = str(tmp_path / 'run')
  train.run(tiny_config('model.use_bias=true', *FAST), run, progress=False)
  summary = to_hf(run, tmp_path / 'hf')
  assert summary.startswith('GPT2LMHeadModel (step 4) -> ')
  assert summary.endswith('tokenizer not written (a char tokenizer has no Hugging Face form)')
  loaded = workdir.load(run)
  hf_model = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / 'hf', dtype=torch.float32)
  ids, mask = hf_parity.padded_batch(loaded.tokenizer.vocab_size, pad_id=0)
  ours = jax.jit(loaded.model.apply)({'params': loaded.params}, ids, None, mask)
  theirs = hf_parity.torch_logits(hf_model.eval(), input_ids=ids, attention_mask=mask)
  hf_parity.assert_close(ours, theirs, mask)


REFUSED = {
    'gpt2 body': (['model.kind=decoder', 'model.pre_norm=true', 'model.embed_norm=false',
                   'model.type_vocab_size=0', 'model.pooler=false', 'model.mlm_head=true',
                   'finetune.pooling=last'],
                  "a classifier on a gpt2 body cannot be written: Hugging Face's gpt2 "
                  'classifier scores without a bias'),
    'mean pooling': (['finetune.pooling=mean'],
                     'BertForSequenceClassification passes the first token through dense + tanh'
                     " to its classifier; this one pools 'mean' without that pooler"),
    'roberta padding': (['model.position_offset=3', 'model.max_len=19'],
                        'RoBERTa would read token 2 as padding (model.position_offset=3) where '
                        'the tokenizer pads with 1'),
}


@pytest.mark.parametrize('case', REFUSED)
def test_what_hugging_face_would_compute_differently_is_refused_in_one_line(labelled, case):
  """Refused before any tensor is written: the models are built, not trained."""
  overrides, expected = REFUSED[case]
  config = classifier_config(labelled, *overrides)
  tokenizer = tokenizers.from_file(str(labelled / 'vocab.txt'))
  cfg = config_lib.model_config(config, tokenizer.vocab_size)
  f = config.finetune
  model = models.build_classifier(cfg, 3, pooling=f.pooling,
                                  use_pooler=None if f.pooler == 'auto' else f.pooler == 'yes')
  params = parallel.unbox(model.init(jax.random.key(0), *models.sample_inputs(cfg))['params'])
  with pytest.raises(ConversionError) as error:
    trained.to_hf(workdir.Trained(config, tokenizer, model, params, 0, ('neg', 'mid', 'pos')))
  assert str(error.value).startswith(expected) and '\n' not in str(error.value)


def test_a_directory_that_is_neither_kind_is_refused(tmp_path):
  with pytest.raises(ConversionError, match='a workdir of llm-jax train'):
    to_hf(str(tmp_path), tmp_path / 'out')
