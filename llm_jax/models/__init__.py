"""Flax Linen models: one configurable Transformer and its heads, LSTM and MLP classifiers,
and the LSTM language model."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from llm_jax.errors import UsageError
from llm_jax.models import heads, lstm, mlp
from llm_jax.models.encoder import EncoderLM
from llm_jax.models.encoder_decoder import EncoderDecoderLM
from llm_jax.models.heads import SequenceClassifier, check_pretrained, load_pretrained
from llm_jax.models.lora import LoraConfig
from llm_jax.models.lstm import LSTMLM, LSTMClassifier
from llm_jax.models.mlp import MLPClassifier
from llm_jax.models.transformer import DecoderLM, TransformerConfig

MODELS = {'decoder': DecoderLM, 'encoder': EncoderLM, 'encoder_decoder': EncoderDecoderLM}


def build(cfg: TransformerConfig, lora: LoraConfig | None = None) -> nn.Module:
  """The language model of ``cfg.kind``; ``lora`` adapts a decoder's projections."""
  if cfg.kind == 'mlp':
    raise UsageError('model.kind="mlp" is a classifier, not a language model: train it with '
                     'objective="classification"')
  if cfg.kind == 'lstm':
    problems = lstm.lm_errors(cfg) + (['LoRA adapts a Transformer\'s projections: set '
                                       'finetune.lora_rank=0'] if lora is not None else [])
    if problems:
      raise UsageError(problems[0])
    return LSTMLM(cfg)
  if lora is None:
    return MODELS[cfg.kind](cfg)
  if cfg.kind != 'decoder':
    raise UsageError(f'LoRA adapts decoders and classifiers, not a {cfg.kind} language model: '
                     'set finetune.lora_rank=0')
  if lora.errors():
    raise UsageError(lora.errors()[0])
  return DecoderLM(cfg, lora)


def build_classifier(cfg: TransformerConfig, num_labels: int, *, pooling: str = 'cls',
                     head_dropout: float = 0.1, use_pooler: bool | None = None,
                     lora: LoraConfig | None = None
                     ) -> SequenceClassifier | LSTMClassifier | MLPClassifier:
  """A classifier (``num_labels=1``: regression) on the body ``cfg`` describes
  (``kind='lstm'``: the Keras-style LSTM, which pools its last state; ``kind='mlp'``: an MLP
  on feature vectors, with no pooling or pooler).

  ``use_pooler=None`` uses BERT's pooler where the body has one (``cfg.pooler``) and pools
  [CLS], as Hugging Face's ``BertForSequenceClassification`` does.
  """
  if cfg.kind == 'mlp':
    problems = mlp.errors(cfg) + (['LoRA adapts a Transformer\'s projections: set '
                                   'finetune.lora_rank=0'] if lora is not None else [])
    if problems:
      raise UsageError(problems[0])
    return MLPClassifier(cfg, num_labels)
  if use_pooler is None:
    use_pooler = cfg.pooler and cfg.kind == 'encoder' and pooling == 'cls'
  problems = heads.errors(cfg, num_labels, pooling, use_pooler, head_dropout)
  problems += lora.errors() if lora is not None else []
  if cfg.kind == 'lstm':
    problems += lstm.errors(cfg, pooling, lora is not None)
  if problems:
    raise UsageError(problems[0])
  if cfg.kind == 'lstm':
    return LSTMClassifier(cfg, num_labels, head_dropout)
  return SequenceClassifier(cfg, num_labels, pooling, head_dropout, use_pooler, lora)


def sample_inputs(cfg: TransformerConfig, batch: int = 1, length: int = 8) -> tuple:
  """Positional arguments for ``build(cfg).init``: token ids (twice for encoder-decoders, one
  row of inputs and one of decoder tokens). No parameter's shape depends on ``length``."""
  if cfg.kind == 'mlp':  # a feature vector of the input width
    return (jnp.zeros((batch, cfg.vocab_size), jnp.float32),)
  tokens = jnp.zeros((batch, length), jnp.int32)
  return (tokens, tokens) if cfg.kind == 'encoder_decoder' else (tokens,)


__all__ = [
  'LSTMLM',
  'DecoderLM',
  'EncoderDecoderLM',
  'EncoderLM',
  'LSTMClassifier',
  'LoraConfig',
  'MLPClassifier',
  'SequenceClassifier',
  'TransformerConfig',
  'build',
  'build_classifier',
  'check_pretrained',
  'load_pretrained',
  'sample_inputs',
]
