"""BERT and RoBERTa (``BertForMaskedLM``, ``BertModel``, ``RobertaForMaskedLM``, and for
classifiers trained here ``BertForSequenceClassification``, ``RobertaForSequenceClassification``).

Post-norm blocks, learned positions and token types summed and normalized, a masked-LM head
whose decoder is the token table. RoBERTa differs in names and in its positions, which start
past the padding row (``pad_token_id + 1``). The next-sentence head of ``BertForPreTraining``
checkpoints (``cls.seq_relationship``, on the pooled [CLS]) becomes ``model.nsp_head``, and
such a model is written back as ``BertForPreTraining``.
"""

from __future__ import annotations

import functools

from llm_jax.convert import rules as r
from llm_jax.convert.family import HF_ACTIVATIONS, Family, activation, require
from llm_jax.models import TransformerConfig, paths

# per family: (model type, base prefix, MLM head names: transform, norm, bias, decoder)
HEADS = {
    'bert': ('bert.', 'cls.predictions.transform.dense', 'cls.predictions.transform.LayerNorm',
             'cls.predictions.bias', 'cls.predictions.decoder'),
    'roberta': ('roberta.', 'lm_head.dense', 'lm_head.layer_norm', 'lm_head.bias',
                'lm_head.decoder'),
}
NSP = 'cls.seq_relationship'  # BERT's next-sentence head (BertForPreTraining)
ARCHITECTURES = {'bert': ('BertForMaskedLM', 'BertModel'),
                 'roberta': ('RobertaForMaskedLM', 'RobertaModel')}
# per family: the sequence classifier and its head's layers -> ours. BERT's pooler belongs to
# its body; RoBERTa's head is dense + tanh + dense on <s>: our pooler and classifier.
CLASSIFIERS = {
    'bert': ('BertForSequenceClassification', {'classifier': 'classifier'}),
    'roberta': ('RobertaForSequenceClassification',
                {'classifier.dense': 'pooler', 'classifier.out_proj': 'classifier'}),
}


def config_from_hf(model_type: str, hf: dict, names: frozenset) -> TransformerConfig:
  prefix, transform, _, _, decoder = HEADS[model_type]
  where = f'{model_type} config.json'
  problems = []
  if hf.get('position_embedding_type', 'absolute') != 'absolute':
    problems.append(f'position_embedding_type={hf["position_embedding_type"]!r} is not supported')
  if hf.get('is_decoder') or hf.get('add_cross_attention'):
    problems.append('is_decoder / add_cross_attention (a BERT decoder) is not supported')
  require(problems, where)
  return TransformerConfig(
      vocab_size=hf['vocab_size'], kind='encoder', d_model=hf['hidden_size'],
      num_heads=hf['num_attention_heads'], num_layers=hf['num_hidden_layers'],
      d_ff=hf['intermediate_size'], max_len=hf['max_position_embeddings'],
      dropout=hf.get('hidden_dropout_prob', 0.1), norm='layernorm',
      norm_eps=hf.get('layer_norm_eps', 1e-12), pre_norm=False, positions='learned',
      position_offset=hf.get('pad_token_id', 1) + 1 if model_type == 'roberta' else 0,
      mlp=activation(hf.get('hidden_act', 'gelu'), where), use_bias=True,
      type_vocab_size=hf.get('type_vocab_size', 2), embed_norm=True,
      tie_embeddings=decoder + '.weight' not in names,
      mlm_head=transform + '.weight' in names, pooler=prefix + 'pooler.dense.weight' in names,
      nsp_head=NSP + '.weight' in names,
      init_std=hf.get('initializer_range', 0.02))


def config_to_hf(model_type: str, cfg: TransformerConfig) -> dict:
  with_head, bare = ARCHITECTURES[model_type]
  out = {
      'architectures': ['BertForPreTraining' if cfg.nsp_head else
                        with_head if cfg.mlm_head else bare], 'model_type': model_type,
      'vocab_size': cfg.vocab_size, 'hidden_size': cfg.d_model,
      'num_attention_heads': cfg.num_heads, 'num_hidden_layers': cfg.num_layers,
      'intermediate_size': cfg.ff_dim, 'max_position_embeddings': cfg.max_len,
      'hidden_dropout_prob': cfg.dropout, 'attention_probs_dropout_prob': 0.0,
      'layer_norm_eps': cfg.norm_eps, 'hidden_act': HF_ACTIVATIONS.get(cfg.mlp, cfg.mlp),
      'type_vocab_size': cfg.type_vocab_size, 'position_embedding_type': 'absolute',
      'tie_word_embeddings': cfg.tie_embeddings, 'initializer_range': cfg.init_std}
  if model_type == 'roberta':
    out['pad_token_id'] = cfg.position_offset - 1
  return out


def tensor_rules(model_type: str, cfg: TransformerConfig) -> list[r.Rule]:
  prefix, transform, norm, bias, decoder = HEADS[model_type]
  e = prefix + 'embeddings.'
  out = [r.copy(e + 'word_embeddings.weight', 'embed/embedding'),
         r.copy(e + 'position_embeddings.weight', 'encoder/pos_embedding'),
         r.copy(e + 'token_type_embeddings.weight', 'encoder/type_embedding'),
         r.copy(e + 'LayerNorm.weight', 'encoder/embed_norm/scale'),
         r.copy(e + 'LayerNorm.bias', 'encoder/embed_norm/bias')]
  for i in range(cfg.num_layers):
    h, b = f'{prefix}encoder.layer.{i}.', f'encoder/{paths.block(i)}/'
    for name in ('query', 'key', 'value'):
      out += [r.linear(f'{h}attention.self.{name}.weight', f'{b}attention/{name}/kernel'),
              r.flat(f'{h}attention.self.{name}.bias', f'{b}attention/{name}/bias')]
    out += [
        r.linear(h + 'attention.output.dense.weight', b + 'attention/out/kernel', n_in=2),
        r.copy(h + 'attention.output.dense.bias', b + 'attention/out/bias'),
        r.copy(h + 'attention.output.LayerNorm.weight', b + 'attention_norm/scale'),
        r.copy(h + 'attention.output.LayerNorm.bias', b + 'attention_norm/bias'),
        r.linear(h + 'intermediate.dense.weight', b + 'mlp/wi/kernel'),
        r.copy(h + 'intermediate.dense.bias', b + 'mlp/wi/bias'),
        r.linear(h + 'output.dense.weight', b + 'mlp/wo/kernel'),
        r.copy(h + 'output.dense.bias', b + 'mlp/wo/bias'),
        r.copy(h + 'output.LayerNorm.weight', b + 'mlp_norm/scale'),
        r.copy(h + 'output.LayerNorm.bias', b + 'mlp_norm/bias'),
    ]
  if cfg.pooler:
    out += [r.linear(prefix + 'pooler.dense.weight', 'pooler/kernel'),
            r.copy(prefix + 'pooler.dense.bias', 'pooler/bias')]
  if cfg.mlm_head:
    out += [r.linear(transform + '.weight', 'mlm_transform/kernel'),
            r.copy(transform + '.bias', 'mlm_transform/bias'),
            r.copy(norm + '.weight', 'mlm_norm/scale'),
            r.copy(norm + '.bias', 'mlm_norm/bias'),
            r.copy(bias, 'mlm_bias')]
    if not cfg.tie_embeddings:
      out.append(r.linear(decoder + '.weight', 'lm_head/kernel'))
  if cfg.nsp_head and model_type == 'bert':  # RoBERTa has none: such a model reads back unlike
    out += [r.linear(NSP + '.weight', 'nsp/kernel'), r.copy(NSP + '.bias', 'nsp/bias')]
  return out


def classifier_rules(model_type: str) -> tuple[r.Rule, ...]:
  _, layers = CLASSIFIERS[model_type]
  return tuple(rule for hf, ours in layers.items()
               for rule in (r.linear(hf + '.weight', ours + '/kernel'),
                            r.copy(hf + '.bias', ours + '/bias')))


def _family(model_type: str) -> Family:
  prefix, _, _, bias, decoder = HEADS[model_type]
  return Family(
      model_type=model_type, prefix=prefix, base_architecture=ARCHITECTURES[model_type][1],
      heads=(decoder.split('.')[0] + '.',),
      config_from_hf=functools.partial(config_from_hf, model_type),
      config_to_hf=functools.partial(config_to_hf, model_type),
      rules=functools.partial(tensor_rules, model_type),
      duplicates={decoder + '.weight': prefix + 'embeddings.word_embeddings.weight',
                  decoder + '.bias': bias},
      dropped=(f'{prefix}embeddings.position_ids', f'{prefix}embeddings.token_type_ids'),
      classifier=(CLASSIFIERS[model_type][0], classifier_rules(model_type)))


BERT = _family('bert')
ROBERTA = _family('roberta')
