"""Zaremba et al.'s LSTM language model: truncated BPTT's stream order, the state it carries
(and resets), a resumed run that continues every stream, and its step against PyTorch's
``nn.LSTM`` with the same weights."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from llm_jax import config as config_lib
from llm_jax import train
from llm_jax import workdir as workdir_lib
from llm_jax.data import lm, loader, pipeline
from llm_jax.evaluation import passes, report
from llm_jax.train import checks, optim
from llm_jax.train import setup as setup_lib
from tests.conftest import REPO

PTB_LSTM = os.path.join(REPO, 'configs', 'ptb_lstm.py')
TINY_LSTM = ['model.d_model=8', 'train.batch_size=3', 'train.seq_len=5', 'train.epochs=0',
             'train.steps=12', 'train.eval_every_epochs=0', 'train.checkpoint_every_epochs=0',
             'train.eval_every=4', 'train.checkpoint_every=6', 'train.select_metric=',
             'train.log_every=1', 'train.full_eval_batch_size=4', 'optim.decay_every_epochs=0',
             'optim.decay_begin_epochs=0', 'optim.decay_every=4', 'optim.decay_begin=4']


def test_each_stream_continues_where_its_last_batch_stopped():
  streams = lm.Streams(np.arange(103), batch_size=4, seq_len=5)  # streams of 25, 3 dropped
  assert streams.epoch_steps == 4  # (25 - 1) // 5
  epoch = [streams.batch(i) for i in range(4)]
  for row in range(4):
    inputs = np.concatenate([b['inputs'][row] for b in epoch])
    np.testing.assert_array_equal(inputs, np.arange(row * 25, row * 25 + 20))
    np.testing.assert_array_equal(np.concatenate([b['targets'][row] for b in epoch]), inputs + 1)
  assert [b['reset'].tolist() for b in epoch] == [[1.0] * 4] + [[0.0] * 4] * 3
  again = streams.batch(4)  # the next epoch starts the streams over, resetting their state
  np.testing.assert_array_equal(again['inputs'], epoch[0]['inputs'])
  assert again['reset'].all()
  # two processes each take their rows of every batch: together, the one-process batch
  halves = [loader.streams(np.arange(103), 4, 5, i, 2)[6] for i in range(2)]
  np.testing.assert_array_equal(np.concatenate([h['inputs'] for h in halves]),
                                streams.batch(6)['inputs'])


def tiny_setup(*overrides, vocab=23):
  config = checks.load(PTB_LSTM, TINY_LSTM + list(overrides))
  return config, setup_lib.build(config, config_lib.model_config(config, vocab))


def test_carried_state_changes_the_loss_and_reset_starts_from_zeros():
  _config, setup = tiny_setup()
  params = setup.init().params
  ev = setup.evaluator
  rng = np.random.default_rng(0)
  ids = rng.integers(0, 23, size=61).astype(np.int32)
  # the split as one stream in windows of 4, 9 or all 60 targets: the same figures, as the
  # state carries everything before each window
  figures = [passes.losses(ev, params, lm.stream_windows(ids, w)) for w in (4, 9, 60)]
  assert [f['tokens'] for f in figures] == [60.0] * 3
  np.testing.assert_allclose([f['loss'] for f in figures], figures[2]['loss'], rtol=1e-6)
  # resetting at each window forgets the stream before it, and changes the figures
  def reset_each(windows):
    return ({**b, 'reset': np.ones_like(b['reset'])} for b in windows)
  forgot = passes.losses(ev, params, reset_each(lm.stream_windows(ids, 4)))
  assert abs(forgot['loss'] - figures[0]['loss']) > 1e-4
  # and a batch flagged reset starts from zeros whatever state it is handed
  batch = next(lm.stream_windows(ids, 9))
  zeros = ev.zero_carry(1)
  ones = jax.tree_util.tree_map(jnp.ones_like, zeros)
  from_zeros, _ = ev.eval_step(params, batch, zeros)
  from_ones, _ = ev.eval_step(params, batch, ones)
  assert float(from_zeros['nll_sum']) == float(from_ones['nll_sum'])
  carried, _ = ev.eval_step(params, {**batch, 'reset': np.zeros(1, np.float32)}, ones)
  assert float(carried['nll_sum']) != float(from_zeros['nll_sum'])


def test_the_lstm_lm_step_equals_pytorch_nn_lstm_with_the_same_weights():
  """One SGD step of the whole model from a carried state: logits, the state the batch ends
  in, the clipped gradient of the loss summed over the unrolled steps, the updated weights."""
  _config, setup = tiny_setup('model.d_model=6', 'optim.clip_norm=0.5', 'optim.lr=0.7')
  state = setup.init()
  rng = np.random.default_rng(1)
  carry = tuple((rng.normal(size=(3, 6)).astype(np.float32) * 0.5,
                 rng.normal(size=(3, 6)).astype(np.float32) * 0.5) for _ in range(2))
  state = state.replace(carry=jax.tree_util.tree_map(jnp.asarray, carry))
  inputs, targets = (rng.integers(0, 23, size=(3, 5)).astype(np.int32) for _ in range(2))
  batch = {'inputs': inputs, 'targets': targets, 'reset': np.zeros(3, np.float32)}
  p = jax.tree_util.tree_map(np.asarray, jax.device_get(state.params))

  torch.manual_seed(0)
  embed = torch.nn.Embedding(23, 6)
  rnn = torch.nn.LSTM(6, 6, num_layers=2, batch_first=True)
  out = torch.nn.Linear(6, 23)
  with torch.no_grad():
    embed.weight.copy_(torch.tensor(p['embed']['embedding']))
    for k in range(2):  # one bias in llm_jax, two in torch: the second is zero and fixed
      block = p[f'block_{k}']
      getattr(rnn, f'weight_ih_l{k}').copy_(torch.tensor(block['kernel_i'].T))
      getattr(rnn, f'weight_hh_l{k}').copy_(torch.tensor(block['kernel_h'].T))
      getattr(rnn, f'bias_ih_l{k}').copy_(torch.tensor(block['bias']))
      getattr(rnn, f'bias_hh_l{k}').zero_()
      getattr(rnn, f'bias_hh_l{k}').requires_grad_(False)  # so it counts in no norm
    out.weight.copy_(torch.tensor(p['output']['kernel'].T))
    out.bias.copy_(torch.tensor(p['output']['bias']))
  h0 = torch.from_numpy(np.stack([h for _, h in carry]))
  c0 = torch.from_numpy(np.stack([c for c, _ in carry]))
  hs, (hn, cn) = rnn(embed(torch.from_numpy(inputs).long()), (h0, c0))
  logits = out(hs)
  mean = torch.nn.functional.cross_entropy(logits.reshape(-1, 23),
                                           torch.from_numpy(targets).long().reshape(-1))
  (mean * 5).backward()  # the paper's loss: summed over the 5 unrolled steps
  weights = [embed.weight, *(w for w in rnn.parameters() if w.requires_grad), out.weight,
             out.bias]
  norm = torch.nn.utils.clip_grad_norm_(weights, 0.5)
  assert norm > 0.5  # the clip is engaged

  ours, _ = setup.model.apply({'params': state.params}, inputs, state.carry)
  np.testing.assert_allclose(ours, logits.detach().numpy(), atol=1e-5)
  new, metrics = setup.train_step(state, batch)
  np.testing.assert_allclose(float(metrics['nll_sum']) / 15, mean.item(), rtol=1e-6)
  np.testing.assert_allclose(float(metrics['grad_norm_sum']), float(norm), rtol=1e-5)
  for k in range(2):
    np.testing.assert_allclose(new.carry[k][0], cn[k].detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(new.carry[k][1], hn[k].detach().numpy(), atol=1e-5)
  updated = jax.device_get(new.params)
  with torch.no_grad():
    for w in weights:
      w -= 0.7 * w.grad
  np.testing.assert_allclose(updated['embed']['embedding'], embed.weight.detach().numpy(),
                             atol=1e-6)
  for k in range(2):
    np.testing.assert_allclose(updated[f'block_{k}']['kernel_h'],
                               getattr(rnn, f'weight_hh_l{k}').detach().numpy().T, atol=1e-6)
    np.testing.assert_allclose(updated[f'block_{k}']['kernel_i'],
                               getattr(rnn, f'weight_ih_l{k}').detach().numpy().T, atol=1e-6)
    np.testing.assert_allclose(updated[f'block_{k}']['bias'],
                               getattr(rnn, f'bias_ih_l{k}').detach().numpy(), atol=1e-6)
  np.testing.assert_allclose(updated['output']['kernel'], out.weight.detach().numpy().T, atol=1e-6)


@pytest.mark.parametrize('variant,hidden,steps,epochs,dropout', [
    ('small', 200, 20, 13, 0.0), ('medium', 650, 35, 39, 0.5), ('large', 1500, 35, 55, 0.65)])
def test_each_variant_is_the_papers(variant, hidden, steps, epochs, dropout):
  config = checks.load(f'{PTB_LSTM}:{variant}', [])
  m, t = config.model, config.train
  assert (m.d_model, m.num_layers, t.seq_len, t.batch_size, t.epochs, m.dropout) == (
      hidden, 2, steps, 20, epochs, dropout)
  setup_lib.build(config, config_lib.model_config(config, 10001))  # builds, nothing refused


def test_the_staircase_holds_then_decays_each_interval():
  config = checks.load(PTB_LSTM, [])
  o = config.optim
  o.decay_every, o.decay_begin = 10, 40
  lr = optim.schedule(o, 130)
  assert [float(lr(s)) for s in (0, 39, 40, 49, 50, 129)] == [1.0, 1.0, 0.5, 0.5, 0.25,
                                                              pytest.approx(0.5 ** 9)]
  o = config_lib.base().optim  # cosine
  o.lr_decay = 0.3
  assert optim.errors(o, 1000) == ['optim.lr_decay=0.3 is read by optim.schedule="staircase" '
                                  'only; leave it at 0.5']


def sentences_corpus(root):
  """Lines of four fixed orderings of the same ten words: a word alone does not say what
  follows, the line's opening (which the carried state remembers) does."""
  rng = np.random.default_rng(0)
  words = ['the', 'cat', 'sat', 'on', 'a', 'red', 'mat', 'by', 'our', 'door']
  orders = [rng.permutation(words) for _ in range(4)]
  for split, lines in (('train', 300), ('valid', 40), ('test', 40)):
    text = '\n'.join(' '.join(orders[i]) for i in rng.integers(0, 4, size=lines))
    (root / f'{split}.txt').write_text(text + '\n')
  return ['data.corpus=files', f'data.files.train={root}/train.txt',
          f'data.files.validation={root}/valid.txt', f'data.files.test={root}/test.txt']


def train_losses(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [(r['step'], r['loss']) for r in map(json.loads, f) if r['split'] == 'train']


@pytest.mark.slow
def test_a_resumed_run_continues_every_stream_and_the_trained_state_helps(tmp_path):
  files = sentences_corpus(tmp_path)
  # 4 streams of 825 tokens: an epoch is 206 steps of 4, so the run crosses one reset
  run = TINY_LSTM + files + ['model.d_model=32', 'train.batch_size=4', 'train.seq_len=4',
                              'train.steps=300', 'train.eval_every=0', 'train.log_every=20',
                              'train.checkpoint_every=100', 'train.full_eval_batch_size=1',
                              'optim.decay_every=100', 'optim.decay_begin=200',
                              'optim.name=adam', 'optim.lr=0.01']  # SGD's lr 1 is slow here
  straight, resumed = str(tmp_path / 'straight'), str(tmp_path / 'resumed')
  train.run(checks.load(PTB_LSTM, run), straight, progress=False)
  train.run(checks.load(PTB_LSTM, run + ['train.steps=140']), resumed, progress=False)
  train.run(checks.load(PTB_LSTM, run), resumed, progress=False)
  assert train_losses(resumed) == train_losses(straight)
  trained = workdir_lib.load(straight)
  for a, b in zip(jax.tree_util.tree_leaves(trained.params),
                  jax.tree_util.tree_leaves(workdir_lib.load(resumed).params)):
    np.testing.assert_array_equal(a, b)
  # trained on carried streams, the model reads the line's ordering from its state: the
  # validation stream evaluated with the state carried beats the same 4-token windows reset
  ev = report.evaluator(trained)
  windows = pipeline.load(trained.config, trained.tokenizer).full['validation']
  carried = passes.losses(ev, trained.params, windows())
  forgot = passes.losses(ev, trained.params, (
      {**b, 'reset': np.ones_like(b['reset'])} for b in windows()))
  assert carried['loss'] < forgot['loss'] - 0.1, (carried, forgot)
  assert carried['loss'] < 0.8, carried  # the orderings are learned (a uniform guess: ln 12)
