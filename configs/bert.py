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

  llm-jax train --config=configs/bert.py:tiny --workdir=runs/bert_tiny --config.data.data_dir=../shared/data

reaches masked-token accuracy 38.1% on validation (loss 4.21 over its 14,600 masked tokens)
and 41.2% on test, in 13 min on the 2-core CPU while another job shared it.
"""

from llm_jax.config import base


def get_config(arg: str = 'tiny'):
  config = base()
  config.objective = 'masked_lm'
  d = config.data  # Penn Treebank lines, a BPE vocabulary trained on them, packed rows
  d.corpus, d.unit, d.tokenizer, d.vocab_size, d.batching = 'ptb', 'line', 'sentencepiece', 8000, 'packed'
  m = config.model
  m.kind, m.norm, m.norm_eps, m.pre_norm, m.embed_norm = 'encoder', 'layernorm', 1e-12, False, True
  m.positions, m.type_vocab_size, m.mlp, m.use_bias = 'learned', 2, 'gelu', True
  m.tie_embeddings, m.mlm_head, m.pooler = True, True, False
  if arg == 'tiny':
    t = config.train  # a CPU demo: about 6 epochs of PTB
    t.batch_size, t.seq_len, t.steps, t.log_every = 32, 128, 1500, 50
    t.eval_every, t.eval_batches, t.checkpoint_every, t.full_eval_batch_size = 500, 20, 500, 64
    m.num_layers, m.num_heads, m.d_model, m.max_len = 2, 2, 128, 128
  elif arg == 'base':
    m.vocab_size, m.num_layers, m.num_heads, m.d_model, m.max_len = 30522, 12, 12, 768, 512
    m.dropout = 0.1
  else:
    raise ValueError(f'unknown variant {arg!r}: use "tiny" or "base"')
  return config
