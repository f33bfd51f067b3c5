"""What pretraining buys: a tiny BERT finetuned on GLUE SST-2, with and without our MLM first.

Variants, run in this order (the last two read the first's workdir and tokenizer):

  llm-jax train --config=configs/sst2_tiny_bert.py:pretrain --workdir=runs/sst2_tiny_bert_mlm
  llm-jax train --config=configs/sst2_tiny_bert.py:finetune --workdir=runs/sst2_tiny_bert_ft
  llm-jax train --config=configs/sst2_tiny_bert.py:scratch --workdir=runs/sst2_tiny_bert_scratch

(each with --config.data.data_dir=../shared/data or LLM_JAX_DATA_DIR set).

`pretrain`: BERT-Tiny's shape (2 layers, 2 heads, 128 wide, Turc et al.) by masked LM (BERT's
80/10/10 over 15% of the pieces) on the SST-2 training sentences plus Penn Treebank's training
lines (the mixture corpus "sst2+ptb": 109,417 texts), packed into rows of 64, with an 8000-piece
BPE vocabulary trained on them. `finetune`: that body, [CLS] through a new pooler into a
2-way classifier, every weight trained on SST-2 train for 3 epochs and evaluated on the 872 dev
sentences. `scratch`: the same classifier, tokenizer and recipe from random weights.

Measured on the 2-core CPU (seed 0): pretraining 21.5 min, masked-token accuracy 41.3% on
validation, 45.7% on PTB test; finetuned 79.36% dev accuracy (F1 0.7978, ROC-AUC 0.8764)
against 80.05% from scratch (F1 0.8041, ROC-AUC 0.8803), 2.4 min each: at this pretraining
budget no gap, and a negative one on 1,000 or 5,000 training sentences
(experiments/sst2_tiny_bert/README.md).
"""

from llm_jax.config import base

PRETRAINED = 'runs/sst2_tiny_bert_mlm'


def get_config(arg: str = 'pretrain'):
  config = base()
  config.seed = 0
  d = config.data
  d.unit, d.batching = 'line', 'packed'
  m = config.model  # BERT-Tiny: configs/bert.py's tiny preset
  m.kind, m.norm, m.norm_eps, m.pre_norm, m.embed_norm = 'encoder', 'layernorm', 1e-12, False, True
  m.positions, m.type_vocab_size, m.mlp, m.use_bias = 'learned', 2, 'gelu', True
  m.num_layers, m.num_heads, m.d_model, m.max_len, m.dropout = 2, 2, 128, 128, 0.1
  m.tie_embeddings = True
  t, o = config.train, config.optim
  if arg == 'pretrain':
    config.objective = 'masked_lm'
    d.corpus, d.tokenizer, d.vocab_size = 'sst2+ptb', 'sentencepiece', 8000
    m.mlm_head, m.pooler = True, False
    t.batch_size, t.seq_len, t.steps, t.log_every = 64, 64, 5000, 50
    t.eval_every, t.eval_batches, t.checkpoint_every, t.full_eval_batch_size = 500, 20, 500, 64
    o.lr, o.min_lr, o.warmup_steps, o.weight_decay = 1e-3, 1e-4, 100, 0.01
  elif arg in ('finetune', 'scratch'):
    config.objective = 'classification'
    d.corpus, d.tokenizer, d.tokenizer_path = 'sst2', 'sentencepiece', f'{PRETRAINED}/tokenizer'
    m.mlm_head, m.pooler = False, True
    f = config.finetune
    f.pretrained = PRETRAINED if arg == 'finetune' else ''
    f.pooling, f.head_dropout = 'cls', 0.1
    t.batch_size, t.seq_len, t.steps = 32, 64, 6313  # three epochs of the 67,349 sentences
    t.log_every, t.eval_every, t.eval_batches, t.checkpoint_every = 100, 1000, 28, 1000
    o.lr, o.min_lr, o.schedule, o.warmup_steps = 1e-3, 0.0, 'linear', 300
    o.b2, o.weight_decay = 0.999, 0.01
  else:
    raise ValueError(f'unknown variant {arg!r}: use "pretrain", "finetune" or "scratch"')
  return config
