"""Instruction tuning against a classification head: SST-2 answered by generation.

A LLaMA-style decoder is pretrained here on the three corpora of the shared data directory,
then taught SST-2 as an instruction: the prompt ``Review: <sentence>\\nSentiment:`` and the
answer `` positive`` or `` negative`` (plain rendering: EOS, prompt, answer, EOS; the loss on
the answer and its EOS only). Accuracy is that of the generated answers, greedy, on the 872 dev
sentences (``llm-jax eval --answers``); the classification head on the same body is the
comparison. Variants, in this order (the last three read the first's workdir and tokenizer):

  llm-jax train --config=configs/sst2_sft.py:pretrain --workdir=runs/sst2_sft_lm
  llm-jax train --config=configs/sst2_sft.py:full --workdir=runs/sst2_sft_full
  llm-jax train --config=configs/sst2_sft.py:lora --workdir=runs/sst2_sft_lora
  llm-jax train --config=configs/sst2_sft.py:head --workdir=runs/sst2_sft_head
  llm-jax eval --workdir=runs/sst2_sft_full --answers   (and _lora; _head: llm-jax eval)

(each with --config.data.data_dir=../shared/data or LLM_JAX_DATA_DIR set).

`pretrain`: 4 layers, 256 wide, 4 heads, SwiGLU 768, RoPE, RMSNorm, tied (6.3M parameters with
the 8000-piece BPE vocabulary trained on the mixture), causal LM on Tiny Shakespeare + Penn
Treebank + SST-2 training sentences by line ("tinyshakespeare+ptb+sst2"), packed rows of 128.
`full`: every weight, 0.38 epoch of SST-2 train as prompt/answer examples packed first-fit
into rows of 96. `lora`: rank-8 adapters on every attention and MLP projection, the body frozen.
`head`: the same body pooled at its last token into a 2-way classifier, every weight trained,
half an epoch.

Measured on the 2-core AMD EPYC CPU (seed 0, each run alone): pretraining 10.8 min (validation
perplexity 115.7); dev accuracy of the generated answers 78.44% full (332 s), 69.95% LoRA
(344 s), against 79.70% for the classification head (338 s): experiments/sst2_sft/README.md.
"""

from llm_jax.config import base

PRETRAINED = 'runs/sst2_sft_lm'
VARIANTS = ('pretrain', 'full', 'lora', 'head')


def get_config(arg: str = 'pretrain'):
  if arg not in VARIANTS:
    raise ValueError(f'unknown variant {arg!r}: use one of {VARIANTS}')
  config = base()
  config.seed = 0
  m = config.model
  m.update(kind='decoder', d_model=192, num_layers=4, num_heads=4, d_ff=512, max_len=128,
           norm='rmsnorm', norm_eps=1e-6, positions='rope', mlp='swiglu', use_bias=False,
           tie_embeddings=True, dropout=0.0)
  d, t, o, f = config.data, config.train, config.optim, config.finetune
  d.tokenizer = 'sentencepiece'
  d.batching = 'packed'
  t.log_every = 50
  t.checkpoint_every = 500
  t.full_eval_batch_size = 64
  o.weight_decay = 0.1
  if arg == 'pretrain':
    config.objective = 'causal_lm'
    d.corpus = 'tinyshakespeare+ptb+sst2'
    d.unit = 'line'
    d.vocab_size = 4000
    t.batch_size = 16
    t.seq_len = 128
    t.steps = 700
    t.eval_every = 350
    t.eval_batches = 20
    o.lr = 2e-3
    o.min_lr = 2e-4
    o.warmup_steps = 100
    return config
  d.corpus = 'sst2'
  d.tokenizer_path = f'{PRETRAINED}/tokenizer'
  f.pretrained = PRETRAINED
  t.eval_every = 0
  o.min_lr = 0.0
  o.schedule = 'linear'
  o.warmup_steps = 20
  if arg == 'head':
    config.objective = 'classification'
    f.pooling = 'last'
    f.head_dropout = 0.1
    t.batch_size = 32
    t.seq_len = 64
    t.steps = 1050  # half an epoch of the 67,349 sentences
    t.eval_every = 500
    t.eval_batches = 28
    o.lr = 5e-4
    return config
  config.objective = 'sft'
  s = config.sft
  s.prompt = 'Review: {text}\nSentiment:'
  s.responses = (' negative', ' positive')
  t.batch_size = 16
  t.seq_len = 96
  t.steps = 470  # 0.38 epoch: rows of 96 hold 3.4 examples on average (25,600 examples)
  if arg == 'lora':
    f.lora_rank = 8
    f.lora_alpha = 16.0
    f.lora_targets = ('attention/(query|key|value|out)$', 'mlp/(wi|wi_gate|wo)$')
    f.freeze = 'lora'
    o.lr = 3e-3
    o.weight_decay = 0.0
  else:
    o.lr = 5e-4
  return config
