"""Experiment configs: ml_collections files with ``get_config(arg)``, overrides, validation.

Every config starts from ``base()``, which is *locked*: a field that does not exist, in a
config file or on the command line, is an error rather than a silently ignored typo. All
checks run before anything is compiled, and each failure is one line naming the field.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
from typing import Sequence

import ml_collections

from llm_jax.data import pipeline, sources
from llm_jax.errors import UsageError
from llm_jax.models import lstm
from llm_jax.models.transformer import TransformerConfig
from llm_jax.tasks import TASKS
from llm_jax.train import freeze


class ConfigError(UsageError):
  """A config that cannot run; the message names the field and how to fix it."""


SCHEDULES = ('cosine', 'linear', 'constant')


def base() -> ml_collections.ConfigDict:
  """Every field an experiment can set, with the defaults of a small CPU run."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.objective = 'causal_lm'  # a name in llm_jax.tasks.TASKS

  c.data = ml_collections.ConfigDict()
  c.data.corpus = 'tinyshakespeare'  # a named corpus, 'files' (data.files) or 'tfds:NAME'
  c.data.data_dir = ''  # named corpora live here; '' means $LLM_JAX_DATA_DIR, else ./data
  c.data.cache_dir = ''  # prepared ArrayRecord copies; '' means $LLM_JAX_CACHE_DIR, else ~/.cache/llm_jax
  c.data.files = ml_collections.ConfigDict({'train': '', 'validation': '', 'test': ''})
  c.data.format = 'text'  # text | tsv | csv | jsonl (the last three are labelled)
  c.data.unit = 'file'  # a text file's documents: the whole file, each line, each paragraph
  c.data.val_fraction = 0.1  # cut from train when there is no validation file
  c.data.header = False
  c.data.text_field = ''  # column name or index ('' : the first column / "text")
  c.data.label_field = ''  # ('' : the last column / "label")
  c.data.labels = ()  # the label vocabulary in id order ('' : sorted labels of train)
  c.data.regression = False
  c.data.clean = ()  # cleaning steps, see llm_jax/data/clean.py
  c.data.tokenizer = 'char'  # char | word | sentencepiece | wordpiece
  c.data.tokenizer_path = ''  # the .model / vocab.txt / tokenizer.json of the last two
  c.data.vocab_size = 0  # word: a cap (0: every word of train); sentencepiece trained here: 8000
  c.data.extra_ids = 0  # ids after the tokenizer's, for the model only (T5's 100 sentinels)
  c.data.batching = 'windows'  # windows (random offsets, nanoGPT) | packed (documents)
  c.data.cross_document = False  # packed rows: attend across documents (a stream LM)
  c.data.workers = 0  # grain worker processes
  c.data.cv_folds = 0  # k-fold cross-validation: train's k shuffled folds (0: off) ...
  c.data.cv_fold = 0  # ... of which this one validates (llm-jax cv runs each in turn)
  c.data.train_examples = 0  # train on a fixed random subset of this many examples (0: all)

  c.model = ml_collections.ConfigDict(
      {f.name: f.default for f in TransformerConfig.__dataclass_fields__.values()
       if f.name != 'vocab_size'})
  c.model.vocab_size = 0  # 0: the tokenizer's vocabulary size

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 12
  c.train.microbatches = 1  # gradient accumulation: the batch is cut into this many slices
  c.train.seq_len = 64
  c.train.steps = 2000
  c.train.log_every = 50
  c.train.eval_every = 250
  c.train.eval_batches = 20  # nanoGPT's estimate: this many random val batches
  c.train.full_eval = True  # at the end, also the loss over every token of the val split
  c.train.full_eval_batch_size = 64
  c.train.checkpoint_every = 500
  # a metric over the whole validation split, evaluated every eval_every steps; the checkpoint
  # of its best value is kept in WORKDIR/best ('': none). Loss and perplexity are minimized.
  c.train.select_metric = ''
  c.train.patience = 0  # stop after this many evaluations without a better one (0: never)
  c.train.keep_checkpoints = 3
  c.train.async_checkpoints = True

  c.optim = ml_collections.ConfigDict()
  c.optim.lr = 1e-3
  c.optim.min_lr = 1e-4
  c.optim.schedule = 'cosine'
  c.optim.warmup_steps = 100
  c.optim.decay_steps = 0  # 0: train.steps
  c.optim.b1 = 0.9
  c.optim.b2 = 0.99
  c.optim.eps = 1e-8
  c.optim.weight_decay = 0.1
  c.optim.clip_norm = 1.0  # 0: no clipping

  c.finetune = ml_collections.ConfigDict()  # objective='classification' only
  c.finetune.pretrained = ''  # a workdir of llm-jax train, or a convert --from-hf directory
  c.finetune.num_labels = 0  # 0: the label vocabulary's size (1 when data.regression)
  c.finetune.pooling = 'cls'  # cls | mean | last (decoders: last or mean)
  c.finetune.head_dropout = 0.1
  c.finetune.pooler = 'auto'  # auto: BERT's pooler where the body has one and pooling is cls
  c.finetune.freeze = 'all'  # all | head | top_k_layers:N | bitfit | embeddings_frozen | lora | regex:P
  c.finetune.layer_decay = 1.0  # layer-wise learning-rate decay in (0, 1]; 1: none
  c.finetune.lora_rank = 0  # 0: no LoRA
  c.finetune.lora_alpha = 16.0
  c.finetune.lora_dropout = 0.0
  c.finetune.lora_targets = ('attention/(query|value)$',)

  c.parallel = ml_collections.ConfigDict()
  c.parallel.data = -1  # -1: every device not used by the other axes
  c.parallel.fsdp = 1
  c.parallel.tensor = 1
  c.lock()
  return c


def load(spec: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
  """Loads ``path[:arg]`` (the argument goes to ``get_config``) and applies overrides.

  Overrides are ``field.path=value`` strings; values are Python literals, else strings.
  """
  path, _, arg = spec.partition(':')
  if not os.path.isfile(path):
    raise ConfigError(f'config file {path} does not exist')
  module_spec = importlib.util.spec_from_file_location('_llm_jax_config', path)
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
    config = module.get_config(arg) if arg else module.get_config()
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    # a locked ConfigDict refuses unknown fields (AttributeError) and wrong types (TypeError)
    raise ConfigError(f'{path}: {e.args[0] if e.args else e}') from None
  for item in overrides:
    override(config, item)
  validate(config)
  return config


def override(config: ml_collections.ConfigDict, item: str) -> None:
  """Sets one ``a.b.c=value`` field, refusing unknown fields and values of the wrong type."""
  key, sep, raw = item.partition('=')
  if not sep:
    raise ConfigError(f'override {item!r} must look like field.path=value')
  *parents, leaf = key.split('.')
  node = config
  for i, name in enumerate(parents):
    if name not in node or not isinstance(node[name], ml_collections.ConfigDict):
      raise ConfigError(f'unknown config section {".".join(parents[:i + 1])!r}')
    node = node[name]
  if leaf not in node:
    where = '.'.join(parents) or 'the top level'
    raise ConfigError(f'unknown config field {key!r}; fields in {where}: '
                      f'{", ".join(sorted(node.keys()))}')
  current = node[leaf]
  value = _parse(raw, current)
  try:
    node[leaf] = value
  except TypeError:
    raise ConfigError(f'config field {key!r} is {type(current).__name__}, '
                      f'got {raw!r}') from None


def _parse(raw: str, current):
  """The override's value, read as a Python literal where the field is not a string."""
  if isinstance(current, str):
    return raw
  if isinstance(current, bool):
    return {'true': True, '1': True, 'yes': True,
            'false': False, '0': False, 'no': False}.get(raw.lower(), raw)
  try:
    value = ast.literal_eval(raw)
  except (ValueError, SyntaxError):
    value = raw
  if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
    return float(value)
  if isinstance(current, tuple) and isinstance(value, (list, str)):
    return tuple(value) if isinstance(value, list) else (value,)
  return value


def model_config(config: ml_collections.ConfigDict, vocab_size: int) -> TransformerConfig:
  """The model section as a TransformerConfig; a vocabulary of 0 is the tokenizer's, plus
  ``data.extra_ids``."""
  fields = dict(config.model)
  if not fields['vocab_size']:
    fields['vocab_size'] = vocab_size + config.data.extra_ids
  return TransformerConfig(**fields)


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError on the first field or combination that cannot run."""
  t, o = config.train, config.optim
  problems = [m for m in model_config(config, vocab_size=1).errors()]
  for name in ('batch_size', 'seq_len', 'steps', 'log_every', 'full_eval_batch_size',
               'keep_checkpoints'):
    if t[name] <= 0:
      problems.append(f'train.{name} must be positive, got {t[name]}')
  if t.microbatches <= 0 or t.batch_size % t.microbatches:
    problems.append(f'train.batch_size={t.batch_size} is not divisible by train.microbatches='
                    f'{t.microbatches}')
  for name in ('eval_every', 'eval_batches', 'checkpoint_every'):
    if t[name] < 0:
      problems.append(f'train.{name} must be >= 0 (0 turns it off), got {t[name]}')
  if t.patience < 0 or (t.patience and not t.select_metric):
    problems.append(f'train.patience={t.patience} needs train.select_metric (the metric to '
                    'watch) and must be >= 0')
  if t.select_metric and not t.eval_every:
    problems.append(f'train.select_metric={t.select_metric!r} is evaluated every '
                    'train.eval_every steps: set train.eval_every > 0')
  d = config.data
  if d.train_examples < 0 or (d.train_examples and config.objective != 'classification'):
    problems.append(f'data.train_examples={d.train_examples} subsets labelled data: it needs '
                    'objective="classification" and a count >= 0')
  if d.cv_folds and (config.objective != 'classification' or d.cv_folds < 2 or
                     not 0 <= d.cv_fold < d.cv_folds):
    problems.append(f'data.cv_folds={d.cv_folds}, data.cv_fold={d.cv_fold}: cross-validation '
                    'needs objective="classification", at least 2 folds and 0 <= cv_fold < '
                    'cv_folds')
  if config.model.positions == 'learned' and config.model.kind != 'lstm' and \
      t.seq_len + config.model.position_offset > config.model.max_len:
    problems.append(f'train.seq_len={t.seq_len} (+ position_offset '
                    f'{config.model.position_offset}) exceeds model.max_len='
                    f'{config.model.max_len} learned positions; raise model.max_len or '
                    'lower train.seq_len')
  if o.schedule not in SCHEDULES:
    problems.append(f'optim.schedule={o.schedule!r} is not one of {SCHEDULES}')
  if o.lr <= 0 or o.min_lr < 0 or o.min_lr > o.lr:
    problems.append(f'need 0 <= optim.min_lr <= optim.lr and lr > 0, got lr={o.lr} '
                    f'min_lr={o.min_lr}')
  decay = o.decay_steps or t.steps
  if not 0 <= o.warmup_steps <= decay:
    problems.append(f'optim.warmup_steps={o.warmup_steps} must be within [0, decay steps='
                    f'{decay}]')
  problems += pipeline.check(config)
  for name in ('data', 'fsdp', 'tensor'):
    if config.parallel[name] == 0 or config.parallel[name] < -1:
      problems.append(f'parallel.{name} must be a positive size or -1, got '
                      f'{config.parallel[name]}')
  if config.objective == 'classification':
    problems += freeze.errors(config.finetune.freeze, config.finetune.layer_decay)
    named = sources.NAMED.get(config.data.corpus, {})
    if named.get('format', config.data.format) == 'text' and \
        not config.data.corpus.startswith('tfds:'):
      problems.append('objective="classification" needs labelled data: data.format tsv, csv or '
                      'jsonl, or a labelled named corpus (sst2, sentiment)')
  if config.model.kind == 'lstm':
    f = config.finetune
    problems += lstm.errors(model_config(config, vocab_size=1), f.pooling,
                            bool(f.lora_rank) or f.freeze == 'lora')
    if config.objective != 'classification':
      problems.append(f'model.kind="lstm" is a classifier: set objective="classification", not '
                      f'{config.objective!r}')
  if config.objective not in TASKS:
    problems.append(f'objective={config.objective!r} is not one of {tuple(TASKS)}')
  if problems:
    raise ConfigError(problems[0])


def to_json(config: ml_collections.ConfigDict) -> str:
  return json.dumps(config.to_dict(), indent=2, sort_keys=True)


def from_json(text: str) -> ml_collections.ConfigDict:
  """Rebuilds a saved config on top of ``base()``, so fields added since still get defaults."""
  config = base()
  config.unlock()
  config.update(json.loads(text))
  config.lock()
  return config
