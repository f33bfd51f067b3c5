"""What a Hugging Face model family is to the converter: its config and its tensor names."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from llm_jax.convert.rules import Rule
from llm_jax.errors import UsageError
from llm_jax.models import TransformerConfig


class ConversionError(UsageError):
  """A checkpoint or config that cannot be converted; the message names every tensor or field."""


@dataclasses.dataclass(frozen=True)
class Family:
  """One ``model_type`` of ``config.json``.

  Rules use the tensor names of the family's model *with* a head (``transformer.h.0...`` for
  GPT-2); a checkpoint of the bare ``base_architecture`` stores its tensors without ``prefix``
  and is read and written accordingly.
  """

  model_type: str
  prefix: str
  base_architecture: str
  heads: tuple[str, ...]  # name roots of head tensors, which never carry the prefix
  config_from_hf: Callable[[dict, frozenset], TransformerConfig]  # (config.json, tensor names)
  config_to_hf: Callable[[TransformerConfig], dict]
  rules: Callable[[TransformerConfig], list[Rule]]
  duplicates: dict[str, str]  # tied copies some checkpoints store -> the tensor they equal
  dropped: tuple[str, ...] = ()  # glob patterns of names read and not kept: buffers, heads
  # a sequence classifier as Hugging Face builds one on this body: (architecture, the rules of
  # its head's tensors); None where ours has no exact counterpart
  classifier: tuple[str, tuple[Rule, ...]] | None = None


# Hugging Face activation names <-> ours (non-gated MLPs)
ACTIVATIONS = {'gelu': 'gelu', 'gelu_new': 'gelu_tanh', 'gelu_pytorch_tanh': 'gelu_tanh',
               'relu': 'relu'}
HF_ACTIVATIONS = {'gelu': 'gelu', 'gelu_tanh': 'gelu_new', 'relu': 'relu'}


def activation(name: str, where: str) -> str:
  if name not in ACTIVATIONS:
    raise ConversionError(f'{where}: activation {name!r} is not supported; llm_jax has '
                          f'{", ".join(sorted(ACTIVATIONS))}')
  return ACTIVATIONS[name]


def require(problems: list[str], where: str) -> None:
  """Raises one error listing every unsupported setting of a config.json."""
  if problems:
    raise ConversionError(f'{where}: ' + '; '.join(problems))
