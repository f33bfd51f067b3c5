"""BERT presets (Devlin et al. 2019), pretrained by masked LM, chosen by argument.

  tiny   2 layers, 2 heads, 128 wide (Turc et al.'s BERT-Tiny shape), context 128: tests and
         CPU demos (vocabulary from the tokenizer).
  base   12 layers, 12 heads, 768 wide, context 512, vocabulary 30522 (bert-base-uncased's):
         109,514,298 parameters, the count of Hugging Face's BertForMaskedLM
         (tests/test_presets.py).

  llm-jax train --config=configs/bert.py:tiny --workdir=runs/bert_tiny

Post-norm blocks, LayerNorm eps 1e-12, learned positions and two token types summed and
normalized, exact-GELU MLP of 4x width, the masked-LM head on the tied table. No pooler: MLM
alone never trains it (BERT's comes from next-sentence prediction); a classification
finetune sets model.pooler=True or pools the hidden states.

The tiny preset's demo, on Penn Treebank (its lines packed into rows of 128, an 8000-piece
BPE vocabulary trained on the training split; 1500 steps of 32 rows, about 5 epochs):

  llm-jax train --config=configs/bert.py:tiny --workdir=runs/bert_tiny \
      --config.data.data_dir=../shared/data

reaches masked-token accuracy 38.1% on validation (loss 4.21 over its 14,600 masked tokens)
and 41.2% on test, in 13 min on the 2-core CPU while another job shared it.
"""

from llm_jax.config import base
from llm_jax.models import presets

PRESETS = {'tiny': 'bert_tiny', 'base': 'bert_base'}


def get_config(arg: str = 'tiny'):
  if arg not in PRESETS:
    raise ValueError(f'unknown variant {arg!r}: use "tiny" or "base"')
  config = base()
  config.objective = 'masked_lm'
  config.model.update(presets.get(PRESETS[arg]))
  d = config.data  # Penn Treebank lines, a BPE vocabulary trained on them, packed rows
  d.corpus = 'ptb'
  d.unit = 'line'
  d.tokenizer = 'sentencepiece'
  d.vocab_size = 8000
  d.batching = 'packed'
  if arg == 'tiny':
    t = config.train  # a CPU demo: about 6 epochs of PTB
    t.batch_size = 32
    t.seq_len = 128
    t.steps = 1500
    t.log_every = 50
    t.eval_every = 500
    t.eval_batches = 20
    t.checkpoint_every = 500
    t.full_eval_batch_size = 64
  return config
