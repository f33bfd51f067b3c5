"""The seed documents' first model: a multilayer perceptron on flat numeric inputs.

Keras' MNIST workflow is ``Dense(128, relu) -> Dense(10, softmax)`` on 784 pixels scaled to
[0, 1]. ``MLPClassifier`` is that model, any depth: called as ``SequenceClassifier`` is and
returning logits, so the classification task, its metrics and checkpoints serve it unchanged.
``model.kind='mlp'`` selects it; its input width is ``vocab_size`` (the data's feature count,
data/features.py), and of the model section only ``mlp_hidden`` (the hidden widths, bottom
up), ``mlp`` (the activation), ``dropout`` (after each hidden layer, as Keras' ``Dropout``),
``init`` / ``init_std`` and ``dtype`` apply.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from llm_jax.models import layers, paths
from llm_jax.models.transformer import TransformerConfig

FIELDS = ('vocab_size', 'kind', 'mlp_hidden', 'mlp', 'dropout', 'init', 'init_std', 'dtype')


def errors(cfg: TransformerConfig) -> list[str]:
  """What an MLP cannot be built with: Transformer options, gated or unknown activations."""
  out = [f'model.{f.name}={getattr(cfg, f.name)!r} means nothing for kind="mlp" (it reads '
         f'{", ".join(FIELDS[2:])}): leave it at its default'
         for f in dataclasses.fields(cfg)
         if f.name not in FIELDS and getattr(cfg, f.name) != f.default]
  if any(width <= 0 for width in cfg.mlp_hidden):
    out.append(f'model.mlp_hidden={tuple(cfg.mlp_hidden)}: widths must be positive')
  plain = tuple(name for name, (_, gated) in layers.ACTIVATIONS.items() if not gated)
  if cfg.mlp not in plain:
    out.append(f'model.mlp={cfg.mlp!r} is an MLP\'s activation here: one of {plain}')
  return out


class MLPClassifier(nn.Module):
  """Float32 logits ``[batch, num_labels]`` (``num_labels=1``: a regression value) of
  ``inputs`` ``[batch, ...]``, flattened; ``attention_mask``, ``positions`` and
  ``token_types`` are accepted for the classifier interface and unused."""

  cfg: TransformerConfig
  num_labels: int

  @nn.compact
  def __call__(self, inputs: jax.Array, positions: jax.Array | None = None,
               attention_mask: jax.Array | None = None, *, token_types: jax.Array | None = None,
               deterministic: bool = True) -> jax.Array:
    del positions, attention_mask, token_types
    cfg = self.cfg
    act, _ = layers.ACTIVATIONS[cfg.mlp]
    x = inputs.reshape(inputs.shape[0], -1).astype(cfg.compute_dtype)
    for i, width in enumerate(cfg.mlp_hidden):
      # 'block_i', as a Transformer names its layers: top_k_layers and layer decay apply
      x = act(layers.Dense((width,), (None,), (None,), True, cfg.kernel_init,
                           cfg.compute_dtype, name=paths.block(i))(x))
      x = nn.Dropout(cfg.dropout)(x, deterministic=deterministic)
    logits = layers.Dense((self.num_labels,), (None,), (None,), True, cfg.kernel_init,
                          cfg.compute_dtype, name=paths.HEAD)(x).astype(jnp.float32)
    return logits
