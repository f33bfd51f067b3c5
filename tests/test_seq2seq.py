"""Text-to-text finetuning of encoder-decoders: the loss of a step equals Hugging Face T5's,
packed pairs keep to themselves, decoding stops at EOS, beam search (width 1 is greedy; a
hand-checked width-2 case), and a T5 finetuned end to end, evaluated by its generated words."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from llm_jax import config as config_lib
from llm_jax import models, tasks
from llm_jax.convert import directories
from llm_jax.data import loader
from llm_jax.inference import generate
from llm_jax.workdir import imported
from tests import conftest

EOS, PAD = 1, 0
EXAMPLES = [(np.array([5, 9, 11, 4]), np.array([7, 8])), (np.array([20, 3]), np.array([12])),
            (np.array([30, 31, 32]), np.array([40, 41, 42]))]


@pytest.fixture(scope='module')
def t5(tmp_path_factory):
  """A random T5 v1.1 (gated GELU, its own output matrix) and its conversion."""
  torch.manual_seed(0)
  config = transformers.T5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=48, num_layers=2,
                                 num_decoder_layers=2, num_heads=4,
                                 feed_forward_proj='gated-gelu', tie_word_embeddings=False,
                                 decoder_start_token_id=PAD, pad_token_id=PAD, eos_token_id=EOS)
  hf_model = transformers.T5ForConditionalGeneration(config).eval()
  hf_model.lm_head.weight = torch.nn.Parameter(torch.randn(64, 32) * 32 ** -0.5)
  root = tmp_path_factory.mktemp('t5')
  hf_model.save_pretrained(root / 'hf')
  directories.import_hf(str(root / 'hf'), str(root / 'ours'))  # parity both ways: test_parity_t5
  cfg, params, _ = imported.read(str(root / 'ours'))
  return hf_model, models.build(cfg), params


def rows(examples, packed: bool):
  """The examples through the task's framing and first-fit packing (all in one row when
  ``packed``, else one per row)."""
  config = config_lib.base()
  config.train.seq_len, config.seq2seq.target_len = 14, 10
  packing = tasks.get('seq2seq').packing({'eos': EOS, 'pad': PAD}, config)
  batches = loader.packed(loader.documents(examples, packing.frame), packing.lengths,
                          packing.finish, 1 if packed else len(examples), 0, train=False,
                          whole=True)
  batch = next(iter(batches))
  if not packed:  # one example per row: the loader fills rows first-fit, so pack them apart
    batch = {k: np.concatenate([next(iter(loader.packed(
        loader.documents([e], packing.frame), packing.lengths, packing.finish, 1, 0,
        train=False, whole=True)))[k] for e in examples])
             for k in batch}
  return batch


def test_a_step_s_loss_equals_hugging_face_t5_and_packing_changes_nothing(t5):
  hf_model, model, params = t5
  batch = rows(EXAMPLES, packed=False)
  bound = tasks.bind('seq2seq', 64, {'eos': EOS, 'pad': PAD})
  loss_of = jax.jit(lambda p, b: bound(model, p, b, jax.random.key(0), train=False))
  loss, metrics = loss_of(params, batch)
  labels = np.where(batch['target_segments'] > 0, batch['targets'], -100)
  with torch.no_grad():
    theirs = hf_model(input_ids=torch.from_numpy(batch['inputs']).long(),
                      attention_mask=torch.from_numpy(batch['input_segments'] > 0).long(),
                      labels=torch.from_numpy(labels).long()).loss.item()
  np.testing.assert_allclose(float(loss), theirs, rtol=1e-5)
  assert float(metrics['tokens']) == sum(len(t) + 1 for _, t in EXAMPLES)
  packed = rows(EXAMPLES, packed=True)
  assert packed['inputs'].shape == (1, 14)  # 5 + 3 + 4 input tokens, 3 + 2 + 4 targets
  assert set(packed['input_segments'][0]) == set(packed['target_segments'][0]) == {0, 1, 2, 3}
  # decoder inputs restart at the start token with each example
  assert packed['decoder_inputs'][0, packed['target_positions'][0] == 0].tolist() == [PAD] * 4
  _, packed_metrics = loss_of(params, packed)
  np.testing.assert_allclose(packed_metrics['nll_sum'], metrics['nll_sum'], rtol=1e-5)


def test_decoding_stops_at_eos_and_beams_of_one_are_greedy(t5):
  _, model, params = t5
  inputs = np.random.default_rng(0).integers(2, 64, (4, 6)).astype(np.int32)
  free = generate.generate_seq2seq(model, params, inputs, 8, jax.random.key(0),
                                   temperature=0.0)
  eos = int(free[0, 2])  # a token greedy decoding draws: stopping there must cut the row
  stopped = generate.generate_seq2seq(model, params, inputs, 8, jax.random.key(0),
                                      temperature=0.0, stop_ids=(eos,))
  for row, full in zip(stopped, free):
    end = np.flatnonzero(full == eos)
    cut = end[0] + 1 if len(end) else len(full)
    assert row[:cut].tolist() == full[:cut].tolist() and not row[cut:].any()
  uncached = generate.generate_seq2seq(model, params, inputs, 8, jax.random.key(0),
                                       temperature=0.0, stop_ids=(eos,), use_cache=False)
  np.testing.assert_array_equal(uncached, stopped)
  beams = generate.beam_seq2seq(model, params, inputs, 8, beams=1, eos_id=eos,
                                length_penalty=0.0)
  np.testing.assert_array_equal(beams, stopped)


def test_beam_search_equals_hugging_face_beam_search(t5):
  """Width 3 with and without a length penalty: the hypotheses transformers' generate picks
  (early_stopping='never', whose stopping bound is ours), up to their EOS."""
  hf_model, model, params = t5
  inputs = np.random.default_rng(0).integers(2, 64, (6, 6)).astype(np.int32)
  free = generate.generate_seq2seq(model, params, inputs, 8, jax.random.key(0),
                                   temperature=0.0)
  eos = int(free[1, 3])  # a token some rows reach: finished and unfinished hypotheses compete
  for penalty in (0.0, 1.0):
    ours = generate.beam_seq2seq(model, params, inputs, 8, beams=3, eos_id=eos,
                                 length_penalty=penalty)
    with torch.no_grad():
      theirs = hf_model.generate(torch.from_numpy(inputs).long(), num_beams=3, max_new_tokens=8,
                                 length_penalty=penalty, early_stopping='never',
                                 eos_token_id=eos, pad_token_id=PAD, do_sample=False).numpy()
    for row, reference in zip(ours, theirs[:, 1:]):  # theirs starts with the start token
      ends = np.flatnonzero(reference == eos)
      cut = ends[0] + 1 if len(ends) else len(reference)
      assert row[:cut].tolist() == reference[:cut].tolist() and not row[cut:].any()


def test_beam_search_of_two_finds_what_greedy_misses():
  """A bigram model over {0: start, 1: EOS, 2: a, 3: b}. Greedy takes a (0.6) then a's best,
  EOS at 0.4: 0.24. Width 2 also keeps b (0.4), whose EOS is 0.9: 0.36, the better
  sentence. With length penalty 1, 'a a EOS' (0.6 * 0.35 * 0.4 = 0.084 over 3 tokens) never
  beats 'b EOS' (log 0.36 / 2)."""
  table = np.full((4, 4), 1e-9)
  table[0, 2], table[0, 3] = 0.6, 0.4
  table[2, 1], table[2, 2], table[2, 3] = 0.4, 0.35, 0.25
  table[3, 1], table[3, 2] = 0.9, 0.1
  log_table = jnp.log(jnp.asarray(table / table.sum(1, keepdims=True), jnp.float32))

  def step(tokens, position, state):
    return log_table[tokens], state

  def search(beams, penalty):
    first = jnp.tile(log_table[0], (beams, 1))
    return np.asarray(generate.beam_search(first, step, (), lambda s, rows: s, 1, beams, 4,
                                           eos_id=1, length_penalty=penalty))[0].tolist()

  assert search(1, 0.0) == [2, 1, 0, 0]  # greedy: a EOS
  assert search(2, 0.0) == [3, 1, 0, 0]  # b EOS
  assert search(2, 1.0) == [3, 1, 0, 0]


@pytest.mark.slow
def test_t5_finetuned_text_to_text_generates_its_label_words(tmp_path, capsys):
  """A tiny T5 learns 'good'/'bad' words -> 'great'/'awful' targets (words of its
  vocabulary); eval --answers scores the generated words on the whole validation file,
  generate and predict print them."""
  from llm_jax import cli
  conftest.write_labelled(tmp_path, {'pos': 'good fine great', 'neg': 'bad poor awful'},
                          {'train': 200, 'validation': 40}, 2, ('film',))
  run = tmp_path / 'run'
  cli.main(['train', f'--workdir={run}', f'--config={conftest.REPO}/configs/t5.py:tiny',
            '--config.objective=seq2seq', '--config.data.corpus=files',
            '--config.data.format=tsv', '--config.data.header=true',
            '--config.data.unit=file', '--config.data.tokenizer=word',
            '--config.data.extra_ids=0', f'--config.data.files.train={tmp_path}/train.tsv',
            f'--config.data.files.validation={tmp_path}/validation.tsv',
            "--config.seq2seq.input=review: {text}", "--config.seq2seq.targets=('awful', 'great')",
            '--config.seq2seq.target_len=6', '--config.model.d_model=32',
            '--config.model.num_heads=2', '--config.model.head_dim=16', '--config.model.d_ff=64',
            '--config.train.batch_size=8', '--config.train.seq_len=24',
            '--config.train.steps=60', '--config.train.log_every=20',
            '--config.train.eval_every=0', '--config.train.checkpoint_every=60',
            '--config.optim.lr=1e-2', '--config.optim.warmup_steps=5'])
  capsys.readouterr()
  cli.main(['eval', f'--workdir={run}', '--answers', '--json'])
  report = json.loads(capsys.readouterr().out)
  assert report['answers'] == 40 and report['answer_accuracy'] >= 0.9
  assert report['not_a_label'] == 0.0 and report['chrf'] > 50
  cli.main(['predict', f'--workdir={run}', '--text=great film', '--text=awful film'])
  assert capsys.readouterr().out.split('\n')[:2] == ['great\tgreat film', 'awful\tawful film']
  cli.main(['generate', f'--workdir={run}', '--prompt=review: good film',
            '--prompt=review: poor film', '--temperature=0', '--max-new-tokens=6'])
  assert capsys.readouterr().out.split('\n')[1:4:2] == ['great', 'awful']


def test_free_text_targets_come_from_a_column_of_their_own(tmp_path):
  """data.label_text keeps a JSONL 'target' as text (no label vocabulary), and a second text
  column reaches the input template as {text_pair}."""
  from llm_jax.data import seq2seq as seq2seq_data
  from llm_jax.data import sources
  rows = [{'source': 'the cat sat', 'context': 'on a mat', 'target': 'le chat'},
          {'source': 'a dog', 'context': 'ran', 'target': 'un chien  '}]
  (tmp_path / 'train.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
  config = config_lib.base()
  d = config.data
  d.corpus, d.format, d.files.train, d.val_fraction = 'files', 'jsonl', str(
      tmp_path / 'train.jsonl'), 0.0
  d.text_field, d.text_pair_field, d.label_field, d.label_text = (
      'source', 'context', 'target', True)
  config.seq2seq.input = 'translate: {text} | {text_pair}'
  prepared = sources.prepare(d)
  assert prepared.label_names == ()
  of = seq2seq_data.texts(config.seq2seq, d.text_field, prepared.label_names)
  records = [prepared.splits['train'][i] for i in range(2)]
  assert [of(r) for r in records] == [('translate: the cat sat | on a mat', 'le chat'),
                                      ('translate: a dog | ran', 'un chien  ')]
