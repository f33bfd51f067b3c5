"""Hugging Face checkpoints <-> our ``TransformerConfig`` and parameter tree.

Only ``config.json`` and ``*.safetensors`` are read: a pickled ``pytorch_model.bin`` can run
code when loaded and is never opened. Before any tensor is converted, the checkpoint's names
and shapes are compared with those the config implies (the family's rules applied to the
*shapes* of a fresh model), and every missing, unexpected or misshapen tensor is reported in
one error.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import glob
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util
from safetensors import safe_open

from llm_jax import fileio, models, parallel
from llm_jax.convert import bert, gemma, gpt2, llama, mistral, qwen2, qwen3, t5
from llm_jax.convert.family import ConversionError, Family
from llm_jax.models import SequenceClassifier, TransformerConfig, paths
from llm_jax.workdir import imported

FAMILIES: dict[str, Family] = {f.model_type: f for f in (gpt2.FAMILY, bert.BERT, bert.ROBERTA,
                                                         t5.FAMILY, llama.FAMILY,
                                                         qwen2.FAMILY, qwen3.FAMILY,
                                                         mistral.FAMILY, gemma.GEMMA,
                                                         gemma.GEMMA2)}
# fields a Hugging Face config does not carry (training-time settings)
UNWRITTEN = ('dropout', 'init_std', 'dtype', 'remat', 'scan_layers', 'attention')


def read_config(directory: str) -> dict:
  path = os.path.join(directory, 'config.json')
  if not os.path.isfile(path):
    raise ConversionError(f'{directory} has no config.json: is it a Hugging Face checkpoint? '
                          'Give the directory save_pretrained wrote (config.json and '
                          'model.safetensors)')
  with open(path) as f:
    return json.load(f)


def family_of(hf_config: dict, where: str) -> Family:
  model_type = hf_config.get('model_type')
  if model_type not in FAMILIES:
    raise ConversionError(f'{where}: unknown architecture model_type={model_type!r} '
                          f'{hf_config.get("architectures", "")}; llm_jax converts '
                          f'{", ".join(FAMILIES)}')
  return FAMILIES[model_type]


def read_tensors(directory: str) -> dict[str, jax.Array]:
  files = sorted(glob.glob(os.path.join(directory, '*.safetensors')))
  if not files:
    raise ConversionError(f'{directory} holds no *.safetensors file; pickled checkpoints are '
                          'never read: re-save with save_pretrained(safe_serialization=True)')
  tensors = {}
  for path in files:
    with safe_open(path, framework='flax') as f:
      for name in f.keys():  # noqa: SIM118 (safe_open is not iterable)
        tensors[name] = f.get_tensor(name)
  return tensors


def write_hf(out: str, hf_config: dict, tensors: dict[str, jax.Array],
             tokenizer_source: str | None = None) -> None:
  """``config.json`` + ``model.safetensors`` (+ the tokenizer files of ``tokenizer_source``),
  which ``transformers``' ``from_pretrained`` loads."""
  os.makedirs(out, exist_ok=True)
  fileio.write_safetensors(os.path.join(out, 'model.safetensors'), tensors)
  fileio.write_atomic(os.path.join(out, 'config.json'), json.dumps(hf_config, indent=2))
  if tokenizer_source:
    imported.copy_tokenizer(tokenizer_source, out)


def _legacy_name(name: str) -> str:
  """TF-era checkpoints (bert-base-uncased) name LayerNorm parameters gamma and beta."""
  for old, new in (('.gamma', '.weight'), ('.beta', '.bias')):
    if name.endswith(old):
      return name[:-len(old)] + new
  return name


def normalize(family: Family, tensors: dict[str, jax.Array]) -> tuple[dict, list[str]]:
  """Names as the family's model with a head writes them; returns them and the dropped names.

  Tied copies equal to the tensor they copy go silently; buffers and heads llm_jax does not
  model go and are listed.
  """
  out = {}
  for name, x in tensors.items():
    name = _legacy_name(name)
    if family.prefix and not name.startswith((family.prefix,) + family.heads):
      name = family.prefix + name
    out[name] = x
  dropped = sorted(n for n in out if any(fnmatch.fnmatchcase(n, p) for p in family.dropped))
  for name in dropped:
    del out[name]
  for copy, source in family.duplicates.items():
    if (copy in out and source in out and out[copy].shape == out[source].shape
        and bool(jnp.array_equal(out[copy], out[source]))):
      del out[copy]
  return out, dropped


def abstract_params(cfg: TransformerConfig) -> dict[str, jax.ShapeDtypeStruct]:
  """Our parameters' shapes, flat by ``/``-joined path, without allocating them."""
  model = models.build(cfg)
  boxed = jax.eval_shape(
      lambda: model.init(jax.random.key(0), *models.sample_inputs(cfg))['params'])
  return traverse_util.flatten_dict(parallel.unbox(boxed), sep='/')


def _export(rules, flat: dict) -> dict:
  return {rule.hf: rule.to_hf([flat[p] for p in rule.ours]) for rule in rules}


def _rules(family: Family, cfg: TransformerConfig, ours: set[str]):
  rules = family.rules(cfg)
  covered = {p for rule in rules for p in rule.ours}
  if covered != ours:
    raise ConversionError(
        f'{family.model_type} has no tensor for parameters '
        f'{", ".join(sorted(ours - covered)) or "-"} and no parameter for rules '
        f'{", ".join(sorted(covered - ours)) or "-"}')
  return rules


def from_hf(directory: str) -> tuple[TransformerConfig, dict, dict, list[str]]:
  """Reads a checkpoint directory: (config, float32 params, its config.json, dropped names)."""
  hf_config = read_config(directory)
  family = family_of(hf_config, directory)
  tensors, dropped = normalize(family, read_tensors(directory))
  cfg = family.config_from_hf(hf_config, frozenset(tensors))
  if cfg.errors():
    raise ConversionError(f'{directory}/config.json: {cfg.errors()[0]}')
  shapes = abstract_params(cfg)
  rules = _rules(family, cfg, set(shapes))
  expected = jax.eval_shape(functools.partial(_export, rules), shapes)
  problems = []
  missing = sorted(set(expected) - set(tensors))
  extra = sorted(set(tensors) - set(expected))
  if missing:
    problems.append('missing tensors: ' + ', '.join(missing))
  if extra:
    problems.append('unexpected tensors: ' + ', '.join(extra))
  wrong = [f'{n} {tuple(tensors[n].shape)} (expected {tuple(expected[n].shape)})'
           for n in sorted(set(expected) & set(tensors))
           if tuple(tensors[n].shape) != tuple(expected[n].shape)]
  if wrong:
    problems.append('wrong shapes: ' + ', '.join(wrong))
  if problems:
    raise ConversionError(f'{directory} does not match the {family.model_type} model its '
                          f'config.json describes; ' + '; '.join(problems))
  flat = {}
  for rule in rules:
    arrays = rule.to_ours(tensors[rule.hf].astype(jnp.float32),
                          [shapes[p].shape for p in rule.ours])
    flat.update(zip(rule.ours, arrays))
  return cfg, traverse_util.unflatten_dict(flat, sep='/'), hf_config, dropped


def infer_family(cfg: TransformerConfig) -> Family:
  """The family a model trained here is written as, when no source config says."""
  if cfg.kind == 'encoder_decoder':
    return FAMILIES['t5']
  if cfg.kind == 'encoder':
    return FAMILIES['roberta' if cfg.position_offset else 'bert']
  if cfg.positions == 'rope':
    if cfg.norm == 'rmsnorm_plus_one':
      return FAMILIES['gemma2' if cfg.sandwich_norm else 'gemma']
    if cfg.qk_norm:
      return FAMILIES['qwen3']
    if cfg.qkv_bias:
      return FAMILIES['qwen2']
    return FAMILIES['mistral' if cfg.sliding_window else 'llama']
  return FAMILIES['gpt2']


def canonical(cfg: TransformerConfig) -> TransformerConfig:
  """Defaults spelled out (head_dim 0 means d_model // num_heads, ...), for comparisons."""
  return dataclasses.replace(
      cfg, head_dim=cfg.dim_per_head, num_kv_heads=cfg.kv_heads, d_ff=cfg.ff_dim,
      num_decoder_layers=cfg.decoder_layers if cfg.kind == 'encoder_decoder' else 0,
      **{name: getattr(TransformerConfig(1), name) for name in UNWRITTEN})


def to_hf(cfg: TransformerConfig, params: dict, source_config: dict | None = None,
          architecture: str | None = None) -> tuple[dict, dict[str, jax.Array]]:
  """Our model as (config.json, tensors) in Hugging Face's layout.

  ``source_config`` (the config.json it was imported from) picks the family and keeps the
  fields llm_jax does not model (token ids, labels); without it the family is inferred.
  ``architecture`` names a model with a head whose tensors the caller adds (a classifier's).
  A model that the family cannot express is refused, naming the fields that would change.
  """
  family = family_of(source_config, 'the source config') if source_config else \
      infer_family(cfg)
  hf_config = {**(source_config or {}), **family.config_to_hf(cfg)}
  names = frozenset(rule.hf for rule in family.rules(cfg))
  back = family.config_from_hf(hf_config, names)
  differ = [f.name for f in dataclasses.fields(cfg)
            if getattr(canonical(back), f.name) != getattr(canonical(cfg), f.name)]
  if differ:
    raise ConversionError(f'this model cannot be written as {family.model_type}: ' + ', '.join(
        f'model.{n}={getattr(cfg, n)!r} would read back as {getattr(back, n)!r}'
        for n in differ))
  if architecture:
    hf_config['architectures'] = [architecture]
  # the converters name blocks one by one; a scanned model's stacked leaves are cut apart
  flat = traverse_util.flatten_dict(paths.unscan(params) if cfg.scan_layers else params, sep='/')
  tensors = _export(_rules(family, cfg, set(flat)), flat)
  if hf_config['architectures'] == [family.base_architecture] and family.prefix:
    tensors = {n[len(family.prefix):] if n.startswith(family.prefix) else n: x
               for n, x in tensors.items()}
  return hf_config, tensors


def classifier_to_hf(model: nn.Module, params: dict,
                     label_names: tuple[str, ...] = ()) -> tuple[dict, dict[str, jax.Array]]:
  """A classifier (adapters merged) as its family's ``...ForSequenceClassification``.

  The body goes by the family's rules under its prefix, the head by ``family.classifier``;
  ``config.json`` gains the labels. Only a head that Hugging Face's computes exactly (in
  evaluation) is written: anything else is refused, not approximated.
  """
  if not isinstance(model, SequenceClassifier):
    raise ConversionError(f'a classifier of kind={model.cfg.kind!r} has no Hugging Face '
                          'counterpart; classifiers on Transformer bodies can be written')
  if model.cfg.kind == 'encoder_decoder':
    raise ConversionError('this classifier reads a T5 encoder alone; Hugging Face\'s '
                          'T5ForSequenceClassification reads the decoder at EOS: no counterpart '
                          'to write (export the pretrained T5 itself, or finetune text-to-text '
                          'with objective="seq2seq")')
  family = infer_family(model.cfg)
  if family.classifier is None:
    supported = ', '.join(f.model_type for f in FAMILIES.values() if f.classifier)
    raise ConversionError(
        f'a classifier on a {family.model_type} body cannot be written: Hugging Face\'s '
        f'{family.model_type} classifier scores without a bias, ours has one; classifiers are '
        f'written on {supported} bodies')
  architecture, head = family.classifier
  if model.pooling != 'cls' or not model.use_pooler:
    raise ConversionError(
        f'{architecture} passes the first token through dense + tanh to its classifier; '
        f'this one pools {model.pooling!r} {"with" if model.use_pooler else "without"} that '
        'pooler: train it with finetune.pooling=cls and finetune.pooler=yes')
  in_head = {p.split('/')[0] for rule in head for p in rule.ours}
  body_cfg = dataclasses.replace(model.cfg, mlm_head=False, nsp_head=False, tie_embeddings=True,
                                 pooler='pooler' not in in_head)
  hf_config, tensors = to_hf(body_cfg, {k: v for k, v in params.items() if k not in in_head},
                             architecture=architecture)
  tensors.update(_export(head, traverse_util.flatten_dict(params, sep='/')))
  return {**hf_config, **labels_config(model.num_labels, label_names),
          'classifier_dropout': model.head_dropout}, tensors


def labels_config(num_labels: int, label_names: tuple[str, ...]) -> dict:
  """Hugging Face's label fields; one output is a regression, as ours."""
  names = list(label_names) if len(label_names) == num_labels else \
      [f'LABEL_{i}' for i in range(num_labels)]
  return {'num_labels': num_labels, 'id2label': dict(enumerate(names)),
          'label2id': {name: i for i, name in enumerate(names)},
          'problem_type': 'regression' if num_labels == 1 else 'single_label_classification'}
