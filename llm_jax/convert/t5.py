"""T5 v1.0 and v1.1 (``T5ForConditionalGeneration``).

RMSNorm pre-norm blocks without biases, unscaled attention, one relative-bias table per stack
(stored in its first block), ReLU (v1.0) or gated-GELU (v1.1) MLPs. v1.0 ties the output to the
token table and rescales the final states by ``d_model**-0.5``; v1.1 has its own ``lm_head`` and
does not rescale. Transformers 5 reads the rescaling from ``scale_decoder_outputs`` and, for
older configs, from ``tie_word_embeddings``; the output is tied when no separate ``lm_head``
is stored, as transformers decides too.
"""

from __future__ import annotations

from llm_jax.convert import rules as r
from llm_jax.convert.family import ConversionError, Family
from llm_jax.models import TransformerConfig, paths

# feed_forward_proj -> our MLP
MLPS = {'relu': 'relu', 'gelu': 'gelu', 'gated-gelu': 'geglu', 'gated-silu': 'swiglu'}
HF_MLPS = {v: k for k, v in MLPS.items()}


def config_from_hf(hf: dict, names: frozenset) -> TransformerConfig:
  projection = hf.get('feed_forward_proj', 'relu')
  if projection not in MLPS:
    raise ConversionError(f't5 config.json: feed_forward_proj={projection!r} is not supported; '
                          f'llm_jax has {", ".join(MLPS)}')
  return TransformerConfig(
      vocab_size=hf['vocab_size'], kind='encoder_decoder', d_model=hf['d_model'],
      num_heads=hf['num_heads'], head_dim=hf['d_kv'], num_layers=hf['num_layers'],
      num_decoder_layers=hf.get('num_decoder_layers') or hf['num_layers'], d_ff=hf['d_ff'],
      max_len=hf.get('n_positions', 512), dropout=hf.get('dropout_rate', 0.1), norm='rmsnorm',
      norm_eps=hf.get('layer_norm_epsilon', 1e-6), pre_norm=True, positions='relative',
      relative_buckets=hf.get('relative_attention_num_buckets', 32),
      relative_max_distance=hf.get('relative_attention_max_distance', 128),
      mlp=MLPS[projection], use_bias=False, scaled_attention=False,
      tie_embeddings='lm_head.weight' not in names,
      rescale_logits=hf.get('scale_decoder_outputs',
                            hf.get('tie_word_embeddings', True) is not False))


def config_to_hf(cfg: TransformerConfig) -> dict:
  return {
      'architectures': ['T5ForConditionalGeneration'], 'model_type': 't5',
      'vocab_size': cfg.vocab_size, 'd_model': cfg.d_model, 'num_heads': cfg.num_heads,
      'd_kv': cfg.dim_per_head, 'num_layers': cfg.num_layers,
      'num_decoder_layers': cfg.decoder_layers, 'd_ff': cfg.ff_dim,
      'n_positions': cfg.max_len, 'dropout_rate': cfg.dropout,
      'layer_norm_epsilon': cfg.norm_eps,
      'relative_attention_num_buckets': cfg.relative_buckets,
      'relative_attention_max_distance': cfg.relative_max_distance,
      'feed_forward_proj': HF_MLPS.get(cfg.mlp, cfg.mlp), 'is_encoder_decoder': True,
      'tie_word_embeddings': cfg.tie_embeddings, 'scale_decoder_outputs': cfg.rescale_logits,
      'pad_token_id': 0, 'eos_token_id': 1, 'decoder_start_token_id': 0}


def _attention(hf: str, ours: str) -> list[r.Rule]:
  return [r.linear(f'{hf}.q.weight', f'{ours}/query/kernel'),
          r.linear(f'{hf}.k.weight', f'{ours}/key/kernel'),
          r.linear(f'{hf}.v.weight', f'{ours}/value/kernel'),
          r.linear(f'{hf}.o.weight', f'{ours}/out/kernel', n_in=2)]


def _mlp(cfg: TransformerConfig, hf: str, ours: str) -> list[r.Rule]:
  if cfg.mlp in ('geglu', 'swiglu'):
    return [r.linear(f'{hf}.wi_0.weight', f'{ours}/wi/kernel'),
            r.linear(f'{hf}.wi_1.weight', f'{ours}/wi_gate/kernel'),
            r.linear(f'{hf}.wo.weight', f'{ours}/wo/kernel')]
  return [r.linear(f'{hf}.wi.weight', f'{ours}/wi/kernel'),
          r.linear(f'{hf}.wo.weight', f'{ours}/wo/kernel')]


def tensor_rules(cfg: TransformerConfig) -> list[r.Rule]:
  out = [r.copy('shared.weight', 'embed/embedding')]
  for stack, layers in (('encoder', cfg.num_layers), ('decoder', cfg.decoder_layers)):
    out += [r.copy(f'{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight',
                   f'{stack}/relative_bias'),
            r.copy(f'{stack}.final_layer_norm.weight', f'{stack}/final_norm/scale')]
    for i in range(layers):
      h, b = f'{stack}.block.{i}.layer.', f'{stack}/{paths.block(i)}/'
      out += _attention(h + '0.SelfAttention', b + 'attention')
      out.append(r.copy(h + '0.layer_norm.weight', b + 'attention_norm/scale'))
      mlp = 1
      if stack == 'decoder':
        out += _attention(h + '1.EncDecAttention', b + 'cross_attention')
        out.append(r.copy(h + '1.layer_norm.weight', b + 'cross_attention_norm/scale'))
        mlp = 2
      out += _mlp(cfg, f'{h}{mlp}.DenseReluDense', b + 'mlp')
      out.append(r.copy(f'{h}{mlp}.layer_norm.weight', b + 'mlp_norm/scale'))
  if not cfg.tie_embeddings:
    out.append(r.linear('lm_head.weight', 'lm_head/kernel'))
  return out


FAMILY = Family(
    model_type='t5', prefix='', base_architecture='T5Model', heads=('lm_head.',),
    config_from_hf=config_from_hf, config_to_hf=config_to_hf, rules=tensor_rules,
    duplicates={'encoder.embed_tokens.weight': 'shared.weight',
                'decoder.embed_tokens.weight': 'shared.weight',
                'lm_head.weight': 'shared.weight'},
    # an unused table that checkpoints written by old transformers carry
    dropped=('decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight',))
