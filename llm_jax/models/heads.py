"""Sequence classification on a pretrained body, and loading that body by name.

``SequenceClassifier`` builds the body of an encoder (BERT) or a decoder (GPT, LLaMA) under the
names its language model uses (``embed``, ``encoder`` or ``decoder``, ``pooler``), so the tree
of a pretraining workdir or of ``convert --from-hf`` loads tensor by tensor; only the new head
(``classifier``) and any LoRA adapters start from their initialization.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util

from llm_jax.errors import UsageError
from llm_jax.models import layers, paths
from llm_jax.models import lora as lora_lib
from llm_jax.models.transformer import Stack, TransformerConfig, default_positions

HEAD = paths.HEAD
POOLINGS = ('cls', 'mean', 'last')
# a language model's output layers, which a classifier has no use for
# (and the next-sentence head, and an encoder-decoder's decoder, when the body is its encoder)
LM_HEADS = ('mlm_transform', 'mlm_norm', 'mlm_bias', 'lm_head', 'pooler', 'nsp', 'decoder')


def errors(cfg: TransformerConfig, num_labels: int, pooling: str, use_pooler: bool,
           head_dropout: float) -> list[str]:
  """Every combination a classifier cannot be built with, one message each."""
  out = []
  if cfg.kind not in ('encoder', 'decoder', 'encoder_decoder', 'lstm'):
    out.append(f'a classifier needs an encoder, a decoder or an encoder-decoder body (or '
               f'kind="lstm"), not kind={cfg.kind!r}')
  if num_labels < 1:
    out.append(f'num_labels must be at least 1 (1: regression), got {num_labels}')
  if pooling not in POOLINGS:
    out.append(f'pooling={pooling!r} is not one of {POOLINGS}')
  if pooling == 'cls' and cfg.kind == 'decoder':
    out.append('pooling="cls" reads the first token, which a causal decoder lets see nothing '
               'else: use "last" or "mean"')
  if use_pooler and (cfg.kind != 'encoder' or pooling != 'cls'):
    out.append('the pooler (BERT\'s dense + tanh on [CLS]) needs an encoder and pooling="cls"')
  if not 0.0 <= head_dropout < 1.0:
    out.append(f'head dropout must be in [0, 1), got {head_dropout}')
  return out


def pool(hidden: jax.Array, valid: jax.Array, pooling: str) -> jax.Array:
  """``[batch, d_model]`` from final states: the first token, the mean over the non-padding
  tokens, or the last non-padding token (where a causal decoder has read the whole row)."""
  if pooling == 'cls':
    return hidden[:, 0]
  if pooling == 'mean':
    weights = valid.astype(hidden.dtype)[..., None]
    return (hidden * weights).sum(1) / jnp.maximum(weights.sum(1), 1.0)
  index = jnp.where(valid, jnp.arange(valid.shape[1]), 0).max(axis=1)
  return jnp.take_along_axis(hidden, index[:, None, None], axis=1)[:, 0]


class SequenceClassifier(nn.Module):
  """Float32 logits ``[batch, num_labels]`` (one output: a regression value) for token rows.

  The body is an encoder (BERT), a decoder (GPT, LLaMA) or an encoder-decoder's encoder (T5).

  ``segment_ids`` is the attention mask (0 on padding), as for the language models. With
  ``use_pooler`` the pooled vector goes through BERT's pooler first; then dropout and the
  dense ``classifier``. ``lora`` adapts the body's targeted projections.
  """

  cfg: TransformerConfig
  num_labels: int
  pooling: str = 'cls'
  head_dropout: float = 0.1
  use_pooler: bool = False
  lora: lora_lib.LoraConfig | None = None

  @nn.compact
  def __call__(self, tokens: jax.Array, positions: jax.Array | None = None,
               segment_ids: jax.Array | None = None, *, token_types: jax.Array | None = None,
               deterministic: bool = True) -> jax.Array:
    cfg = self.cfg
    dtype = cfg.compute_dtype
    positions = default_positions(tokens, positions)
    valid = jnp.ones(tokens.shape, bool) if segment_ids is None else segment_ids != 0
    with lora_lib.enabled(self.lora, deterministic):
      embed = layers.Embed(cfg.vocab_size, cfg.d_model, cfg.init_std, dtype, name='embed')
      # the stack takes its language model's name: 'encoder' or 'decoder' (an
      # encoder-decoder's classifier reads its encoder alone, as T5EncoderModel)
      hidden = Stack(cfg, cfg.num_layers, causal=cfg.kind == 'decoder',
                     name='decoder' if cfg.kind == 'decoder' else 'encoder')(
          embed(tokens), positions, segment_ids, token_types=token_types,
          deterministic=deterministic)
      x = pool(hidden, valid, self.pooling)
      if self.use_pooler:
        x = jnp.tanh(layers.Dense((cfg.d_model,), ('embed',), (None,), True,
                                  cfg.kernel_init, dtype, name='pooler')(x))
      x = nn.Dropout(self.head_dropout)(x, deterministic=deterministic)
      logits = layers.Dense((self.num_labels,), ('embed',), (None,), True,
                            cfg.kernel_init, dtype, name=HEAD)(x)
    return logits.astype(jnp.float32)


@dataclasses.dataclass
class LoadReport:
  """What ``load_pretrained`` did, by '/'-joined parameter path."""

  loaded: list[str]
  new: list[str]  # the head and any adapters, as initialized
  dropped: list[str]  # the checkpoint's language-model heads

  def summary(self) -> str:
    adapters = [p for p in self.new if lora_lib.is_adapter(p)]
    new = [p for p in self.new if not lora_lib.is_adapter(p)]
    new += [f'{len(adapters)} LoRA adapter tensors'] if adapters else []
    out = f'loaded {len(self.loaded)} pretrained tensors; new: {", ".join(new) or "none"}'
    if self.dropped:
      groups: dict[str, list[str]] = {}
      for path in self.dropped:
        groups.setdefault(path.split('/')[0], []).append(path)
      named = [members[0] if len(members) == 1 else f'{top}/ ({len(members)} tensors)'
               for top, members in groups.items()]
      out += f'; dropped (language-model heads): {", ".join(named)}'
    return out


def _is_new(path: str, source: dict) -> bool:
  """The head and adapters are always new; so is BERT's pooler where the checkpoint has none
  (masked-LM pretraining never trains one), as Hugging Face initializes it then."""
  top = path.split('/')[0]
  return (top == HEAD or lora_lib.is_adapter(path) or
          (top == 'pooler' and not any(p.startswith('pooler/') for p in source)))


def check_pretrained(params_init, pretrained: dict) -> LoadReport:
  """What ``load_pretrained`` would do; ``params_init`` may be abstract (shapes only), so a
  run can check a checkpoint before compiling anything.

  Raises UsageError naming every body tensor the checkpoint lacks, every checkpoint tensor
  the classifier has no place for (language-model heads excepted: they are reported as
  dropped) and every shape that differs.
  """
  init = traverse_util.flatten_dict(params_init, sep='/')
  source = traverse_util.flatten_dict(paths.match_layout(pretrained, params_init), sep='/')
  missing = [p for p in init if not _is_new(p, source) and p not in source]
  unexpected = [p for p in source if p not in init and p.split('/')[0] not in LM_HEADS]
  misshaped = [f'{p} (checkpoint {tuple(source[p].shape)}, model {tuple(init[p].shape)})'
               for p in init if p in source and tuple(source[p].shape) != tuple(init[p].shape)]
  problems = [f'{what}: {", ".join(names)}' for what, names in
              (('missing', missing), ('unexpected', unexpected), ('wrong shape', misshaped))
              if names]
  if problems:
    raise UsageError('the pretrained parameters do not fit the classifier; '
                     + '; '.join(problems))
  return LoadReport([p for p in init if p in source], [p for p in init if p not in source],
                    [p for p in source if p not in init])


def load_pretrained(params_init: dict, pretrained: dict) -> tuple[dict, LoadReport]:
  """``params_init`` (unboxed) with every body tensor replaced by the one of the same path in
  ``pretrained`` (a workdir's or an imported model's tree), cast to the initialized dtype;
  the head and any adapters keep their initialization. Refuses, by name, a checkpoint that
  does not fit (``check_pretrained``)."""
  report = check_pretrained(params_init, pretrained)
  out = traverse_util.flatten_dict(params_init, sep='/')
  source = traverse_util.flatten_dict(paths.match_layout(pretrained, params_init), sep='/')
  out.update({p: jnp.asarray(source[p], out[p].dtype) for p in report.loaded})
  return traverse_util.unflatten_dict(out, sep='/'), report
