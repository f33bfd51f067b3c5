"""Character-level GPT on Tiny Shakespeare: nanoGPT's `shakespeare_char`, as a record.

Default (`get_config()`): nanoGPT's documented CPU recipe, i.e. `train.py
config/train_shakespeare_char.py --device=cpu --compile=False --eval_iters=20 --log_interval=1
--block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000
--lr_decay_iters=2000 --dropout=0.0`.

  llm-jax train --config=configs/shakespeare_char.py --workdir=runs/shakespeare_char

  Measured on the 2-core Zen 4 CPU (float32, seed 1337): val loss 1.8919 at iteration 2000
  (nanoGPT's 20-batch estimate; nanoGPT's own run here: 1.8857), 1.9030 over every token of the
  validation split; wall time 78 s (nanoGPT, run beside it: 72 s). Over 14 seeds the
  whole-split loss is 1.9095 +- 0.0016 (standard error; nanoGPT over the same 14 seeds:
  1.9072 +- 0.0024), and 12 steps of our train step equal PyTorch's AdamW loop to 2e-5
  (tests/test_parity_training.py); the 20-batch estimate moves by 0.017 (one standard
  deviation) from seed to seed: experiments/shakespeare_char/README.md.
  On a 2-core Zen 3 (2026-12-01, `/usr/bin/time`, alternated with nanoGPT): 181.6 and 196.5 s
  wall against nanoGPT's 180.3 and 169.2 s, the same losses to the fourth decimal
  (experiments/speed/README.md).

`get_config('gpu')`: nanoGPT's GPU recipe (6 layers, 6 heads, 384 wide, context 256, batch 64,
dropout 0.2, lr 1e-3 -> 1e-4 over 5000 steps, warmup 100); nanoGPT reports val loss 1.4697
after about 3 minutes on one A100.

  llm-jax train --config=configs/shakespeare_char.py:gpu --workdir=runs/shakespeare_char_gpu
"""

from llm_jax.config import base


def get_config(arg: str = 'cpu'):
  config = base()
  config.seed = 1337
  config.data.corpus = 'tinyshakespeare'
  config.data.tokenizer = 'char'
  config.data.val_fraction = 0.1

  m = config.model
  m.num_layers = 4
  m.num_heads = 4
  m.d_model = 128
  m.max_len = 64
  m.dropout = 0.0
  m.use_bias = False  # nanoGPT's default: no biases in Linear and LayerNorm
  m.norm = 'layernorm'
  m.positions = 'learned'
  m.mlp = 'gelu'
  m.tie_embeddings = True

  t = config.train
  t.batch_size = 12
  t.seq_len = 64
  t.steps = 2000
  t.eval_every = 250
  t.eval_batches = 20
  t.log_every = 50
  t.checkpoint_every = 500

  o = config.optim
  o.lr = 1e-3
  o.min_lr = 1e-4
  o.schedule = 'cosine'
  o.warmup_steps = 100
  o.decay_steps = 2000
  o.b1 = 0.9
  o.b2 = 0.99
  o.weight_decay = 0.1
  o.clip_norm = 1.0

  if arg == 'gpu':
    m.num_layers = 6
    m.num_heads = 6
    m.d_model = 384
    m.max_len = 256
    m.dropout = 0.2
    t.batch_size = 64
    t.seq_len = 256
    t.steps = 5000
    t.eval_batches = 200
    o.decay_steps = 5000
  elif arg != 'cpu':
    raise ValueError(f'unknown variant {arg!r}: use "cpu" (default) or "gpu"')
  return config
