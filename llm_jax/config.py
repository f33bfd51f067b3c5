"""Experiment configs: the schema (``base``), loading ``get_config(arg)`` files, overrides.

Every config starts from ``base()``, which is *locked*: a field that does not exist, in a
config file or on the command line, is an error rather than a silently ignored typo. Whether
the values can train is checked by their owners (``llm_jax.train.checks``).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
from collections.abc import Sequence

import ml_collections

from llm_jax.errors import UsageError
from llm_jax.models.transformer import TransformerConfig


class ConfigError(UsageError):
  """A config that cannot run; the message names the field and how to fix it."""


def base() -> ml_collections.ConfigDict:
  """Every field an experiment can set, with the defaults of a small CPU run."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  # a task: causal_lm | masked_lm | mlm_nsp | span_corruption | classification | sft | seq2seq
  c.objective = 'causal_lm'

  c.data = ml_collections.ConfigDict()
  c.data.corpus = 'tinyshakespeare'  # a named corpus, 'files' (data.files) or 'tfds:NAME'
  c.data.data_dir = ''  # named corpora live here; '' means $LLM_JAX_DATA_DIR, else ./data
  # prepared ArrayRecord copies; '' means $LLM_JAX_CACHE_DIR, else ~/.cache/llm_jax
  c.data.cache_dir = ''
  c.data.files = ml_collections.ConfigDict({'train': '', 'validation': '', 'test': ''})
  c.data.format = 'text'  # text | tsv | csv | jsonl (the last three are labelled)
  c.data.unit = 'file'  # a text file's documents: the whole file, each line, each paragraph
  # drawn from train (by split_seed; stratified by label) when there is no validation file
  c.data.val_fraction = 0.1
  c.data.split_seed = 0  # apart from seed, so that runs of several seeds share one split
  c.data.header = False
  c.data.text_field = ''  # column name or index ('' : the first column / "text")
  c.data.label_field = ''  # ('' : the last column / "label")
  # a second text column: sentence pairs ([CLS] a [SEP] b [SEP], token types 0/1) ('': none)
  c.data.text_pair_field = ''
  c.data.label_text = False  # labels are free texts (seq2seq targets), not classes
  c.data.labels = ()  # the label vocabulary in id order ('' : sorted labels of train)
  c.data.regression = False
  c.data.clean = ()  # cleaning steps, see llm_jax/data/clean.py
  c.data.tokenizer = 'char'  # char | word | sentencepiece | wordpiece | hf
  c.data.tokenizer_path = ''  # a .model, vocab.txt, tokenizer.json or a directory of one
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
  c.train.epochs = 0  # > 0: train this many passes over the training split instead of steps
  c.train.eval_every_epochs = 0  # with epochs: evaluate every N epochs (replaces eval_every)
  c.train.checkpoint_every_epochs = 0  # with epochs: ... and checkpoint (checkpoint_every)
  c.train.log_every = 50
  c.train.eval_every = 250
  c.train.eval_batches = 20  # nanoGPT's estimate: this many random val batches
  c.train.full_eval = True  # at the end, also the loss over every token of the val split
  c.train.full_eval_batch_size = 64
  # data.batching='windows': whole-split windows start this many tokens apart and score only
  # the targets the previous one did not, so each sees >= seq_len - stride before it (0: seq_len)
  c.train.full_eval_stride = 0
  c.train.checkpoint_every = 500
  # a metric over the whole validation split, evaluated every eval_every steps; the checkpoint
  # of its best value is kept in WORKDIR/best ('': none). Loss and perplexity are minimized.
  c.train.select_metric = ''
  c.train.patience = 0  # stop after this many evaluations without a better one (0: never)
  c.train.keep_checkpoints = 3
  c.train.async_checkpoints = True
  # a step with a non-finite loss or gradient is never applied; the run stops at the first
  # such step (0), or skips up to this many and stops at the next
  c.train.skip_nonfinite = 0
  # also log to Weights & Biases under this project (needs `pip install wandb` and a login or
  # WANDB_MODE=offline); '' : TensorBoard and metrics.jsonl only
  c.train.wandb_project = ''

  c.optim = ml_collections.ConfigDict()
  c.optim.name = 'adamw'  # adamw | adam | sgd | adafactor | lion (train/optim.py)
  c.optim.lr = 1e-3
  c.optim.min_lr = 1e-4
  c.optim.schedule = 'cosine'  # cosine | linear (to min_lr) | constant | staircase
  # staircase: lr for decay_begin steps, then times lr_decay every decay_every steps (Zaremba
  # et al.'s "x0.5 after each epoch from the 5th"); with train.epochs both can count epochs
  c.optim.lr_decay = 0.5
  c.optim.decay_every = 0
  c.optim.decay_begin = 0
  c.optim.decay_every_epochs = 0
  c.optim.decay_begin_epochs = 0
  c.optim.warmup_steps = 100
  c.optim.decay_steps = 0  # 0: train.steps
  c.optim.b1 = 0.9
  c.optim.b2 = 0.99
  c.optim.eps = 1e-8
  c.optim.momentum = 0.0  # sgd (0: plain SGD)
  c.optim.nesterov = False  # sgd, with momentum
  c.optim.decay_rate = 0.8  # adafactor: its second-moment decay exponent
  # adamw, lion: decoupled, times lr; adam, sgd: L2 added to the gradient; adafactor: optax's
  c.optim.weight_decay = 0.1
  c.optim.clip_norm = 1.0  # 0: no clipping

  c.finetune = ml_collections.ConfigDict()  # objectives classification, sft and seq2seq
  c.finetune.pretrained = ''  # a workdir of llm-jax train, or a convert --from-hf directory
  c.finetune.num_labels = 0  # 0: the label vocabulary's size (1 when data.regression)
  c.finetune.pooling = 'cls'  # cls | mean | last (decoders: last or mean)
  c.finetune.head_dropout = 0.1
  c.finetune.pooler = 'auto'  # auto: BERT's pooler where the body has one and pooling is cls
  # all | head | top_k_layers:N | bitfit | embeddings_frozen | lora | regex:P (train/freeze.py)
  c.finetune.freeze = 'all'
  c.finetune.layer_decay = 1.0  # layer-wise learning-rate decay in (0, 1]; 1: none
  c.finetune.lora_rank = 0  # 0: no LoRA
  c.finetune.lora_alpha = 16.0
  c.finetune.lora_dropout = 0.0
  c.finetune.lora_targets = ('attention/(query|value)$',)

  c.sft = ml_collections.ConfigDict()  # objective='sft' only (data/sft.py)
  c.sft.template = 'plain'  # plain: EOS, the turns, EOS after each answer | chat: the template
  c.sft.chat_template = ''  # a .jinja file for template=chat ('': the tokenizer's own)
  c.sft.prompt = '{text}'  # labelled examples: the user turn, the example's text at {text}
  c.sft.responses = ()  # labelled examples: the answer to each label ((): the label names)
  c.sft.loss_on = 'responses'  # responses | all (prompts and template markers too)

  c.seq2seq = ml_collections.ConfigDict()  # objective='seq2seq' only (data/seq2seq.py)
  c.seq2seq.input = '{text}'  # the encoder's input; {text} (and {text_pair}) from the record
  c.seq2seq.targets = ()  # class labels: the target word of each ((): the label names)
  c.seq2seq.target_len = 16  # target tokens per example, EOS included (inputs: train.seq_len)

  c.mlm = ml_collections.ConfigDict()  # objectives masked_lm and mlm_nsp (BERT's defaults)
  c.mlm.rate = 0.15  # the fraction of tokens selected for prediction
  c.mlm.mask_fraction = 0.8  # of those, replaced by [MASK] ...
  c.mlm.random_fraction = 0.1  # ... by a random token (the rest stay as they are)
  c.mlm.random_next = 0.5  # mlm_nsp: the fraction of pairs whose second segment is random

  c.span_corruption = ml_collections.ConfigDict()  # objective='span_corruption' (T5's)
  c.span_corruption.noise_density = 0.15
  c.span_corruption.mean_span_length = 3.0

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
  get_config = file_function(path, 'get_config', 'config', 'configs/shakespeare_char.py',
                             'llm_jax.config.base() amended (see configs/)')
  try:
    config = get_config(arg) if arg else get_config()
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    # a locked ConfigDict refuses unknown fields (AttributeError) and wrong types (TypeError)
    raise ConfigError(f'{path}:{_line_in(path, e)}: {_config_message(e)}') from None
  for item in overrides:
    override(config, item)
  return config


def file_function(path: str, name: str, kind: str, example: str, returns: str):
  """The function ``name`` of the Python file ``path`` (a config or a sweep file), executed;
  a missing file, a syntax error or a missing function is one line naming the fix."""
  if not os.path.isfile(path):
    raise ConfigError(f'{kind} file {path} does not exist; give a path such as {example} '
                      '(optionally FILE:ARG)')
  module_spec = importlib.util.spec_from_file_location(f'_llm_jax_{kind}', path)
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
  except SyntaxError as e:
    raise ConfigError(f'{path}:{e.lineno}: {e.msg}; fix the {kind} file') from None
  function = getattr(module, name, None)
  if not callable(function):
    raise ConfigError(f'{path} defines no {name}(); a {kind} file defines {name}(arg=None) '
                      f'returning {returns}')
  return function


def _line_in(path: str, e: BaseException) -> int | str:
  """The line of the config file where ``e`` was raised."""
  line, tb = '?', e.__traceback__
  while tb is not None:
    if os.path.abspath(tb.tb_frame.f_code.co_filename) == os.path.abspath(path):
      line = tb.tb_lineno
    tb = tb.tb_next
  return line


def _config_message(e: BaseException) -> str:
  """ml_collections' refusal of an unknown field, shortened to the field and its siblings."""
  text = str(e.args[0] if e.args else e)
  unknown = re.search(r'Key "(\w+)" does not exist', text)
  if not unknown:
    return text
  guess = re.search(r'Did you mean "(\w+)"', text)
  siblings = sorted(set(re.findall(r"\\?'(\w+)\\?': ", text)))
  return (f'unknown config field {unknown.group(1)!r}'
          + (f' (did you mean {guess.group(1)!r}?)' if guess else '')
          + f'; the fields beside it are {", ".join(siblings)}')


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


def to_json(config: ml_collections.ConfigDict) -> str:
  return json.dumps(config.to_dict(), indent=2, sort_keys=True)


def from_json(text: str) -> ml_collections.ConfigDict:
  """Rebuilds a saved config on top of ``base()``, so fields added since still get defaults."""
  config = base()
  config.unlock()
  config.update(json.loads(text))
  config.lock()
  return config
