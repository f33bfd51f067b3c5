"""T5 on GLUE SST-2 two ways: text to text (the label's word generated) and a classifier head on
the same pretrained encoder, both from our span-corruption pretraining.

Variants, run in this order (the last two read the first's workdir and tokenizer):

  llm-jax train --config=configs/sst2_t5.py:pretrain --workdir=runs/sst2_t5_span
  llm-jax train --config=configs/sst2_t5.py:text2text --workdir=runs/sst2_t5_text2text
  llm-jax eval --workdir=runs/sst2_t5_text2text --answers
  llm-jax train --config=configs/sst2_t5.py:classify --workdir=runs/sst2_t5_classify

(each with --config.data.data_dir=../shared/data or LLM_JAX_DATA_DIR set).

`pretrain`: the t5 tiny preset (v1.1 style, 2 + 2 layers, 128 wide) by span corruption (15%
noise, mean span 3) on the SST-2 training sentences and Penn Treebank's lines ("sst2+ptb"),
an 8000-piece BPE vocabulary trained on them plus T5's 100 sentinels. `text2text`: that model
finetuned as T5 finetunes GLUE: input "sst2 sentence: {text}", target "negative" or
"positive", teacher-forced, (input, target) pairs packed first-fit; dev accuracy is the exact
match of the greedily generated word over all 872 dev sentences. `classify`: the same
pretrained encoder (its decoder dropped), mean-pooled into a new 2-way head, the same
finetuning budget in epochs.

Measured on the 2-core AMD EPYC (Zen 3), float32, seed 0, cores shared with other jobs:
pretrain 39.6 min (target loss 4.386 on validation); text2text 26.7 min, dev accuracy 79.47%
by the greedily generated word (beam of 4: the same); classify 17.3 min, dev accuracy 78.67%
(F1 0.7924, ROC-AUC 0.8748). experiments/sst2_t5/README.md has the table.
"""

from llm_jax.config import base
from llm_jax.models import presets

PRETRAINED = 'runs/sst2_t5_span'


def get_config(arg: str = 'pretrain'):
  if arg not in ('pretrain', 'text2text', 'classify'):
    raise ValueError(f'unknown variant {arg!r}: use "pretrain", "text2text" or "classify"')
  config = base()
  config.seed = 0
  config.model.update(presets.get('t5_tiny'))
  d, t, o = config.data, config.train, config.optim
  d.tokenizer = 'sentencepiece'
  d.extra_ids = 100  # T5's sentinels, after the sentencepiece vocabulary
  if arg == 'pretrain':
    config.objective = 'span_corruption'
    d.corpus = 'sst2+ptb'
    d.unit = 'line'
    d.vocab_size = 8000
    d.batching = 'packed'
    t.batch_size = 32
    t.seq_len = 128  # inputs after corruption (raw rows of 141 tokens)
    t.steps = 1500
    t.log_every = 50
    t.eval_every = 500
    t.eval_batches = 20
    t.checkpoint_every = 500
    t.full_eval_batch_size = 64
    return config
  d.corpus = 'sst2'
  d.tokenizer_path = f'{PRETRAINED}/tokenizer'
  config.model.dropout = 0.1
  config.finetune.pretrained = PRETRAINED
  t.seq_len = 64
  t.batch_size = 32
  t.log_every = 100
  t.eval_every = 500
  t.checkpoint_every = 1000
  t.full_eval_batch_size = 64
  o.lr = 1e-3
  o.min_lr = 0.0
  o.schedule = 'linear'
  o.warmup_steps = 100
  o.b2 = 0.999
  o.weight_decay = 0.01
  if arg == 'text2text':
    config.objective = 'seq2seq'
    d.batching = 'packed'
    config.seq2seq.input = 'sst2 sentence: {text}'
    config.seq2seq.targets = ('negative', 'positive')
    config.seq2seq.target_len = 12  # a row of targets: about 3 examples, as the input row
    t.steps = 2100  # about three epochs of the 67,349 sentences, ~96 per packed batch
    t.eval_batches = 10
  else:
    config.objective = 'classification'
    config.finetune.pooling = 'mean'
    config.finetune.head_dropout = 0.1
    t.steps = 6313  # three epochs of 32 sentences
    t.eval_batches = 28
  return config
