"""A workdir's checkpoint over every example of an evaluation split (``llm-jax eval``).

It rebuilds the run's data from the config saved in the workdir (its own tokenizer), so the
figures are those training logged as ``val_full``, plus a classifier's confusion matrix.
"""

from __future__ import annotations

from typing import Any

import ml_collections
from jax.sharding import NamedSharding, PartitionSpec

from llm_jax import config as config_lib
from llm_jax import parallel
from llm_jax import workdir as workdir_lib
from llm_jax.data import pipeline
from llm_jax.errors import UsageError
from llm_jax.evaluation import metrics as metrics_lib
from llm_jax.evaluation import passes
from llm_jax.inference import text


def evaluator(trained: workdir_lib.Trained) -> passes.Evaluator:
  """The run's evaluation, its parameters replicated on a data-parallel mesh of the devices
  at hand (whatever mesh it trained on), its masking drawn as training drew it."""
  mesh = parallel.make_mesh(ml_collections.ConfigDict({'data': -1, 'fsdp': 1, 'tensor': 1}))
  vocab_size = config_lib.model_config(trained.config, trained.tokenizer.vocab_size).vocab_size
  loss = trained.task.bind(vocab_size, trained.tokenizer.special, trained.config)
  return passes.evaluator(trained.model, trained.task, loss, mesh,
                          NamedSharding(mesh, PartitionSpec()),
                          passes.run_keys(trained.config.seed).eval,
                          trained.task.carries(trained.config))


def scored(workdir: str, split: str = 'validation', checkpoint: str = 'auto'
           ) -> tuple[workdir_lib.Trained, dict[str, float], metrics_lib.Classification | None]:
  """The run at ``checkpoint``, its metrics over ``split`` and, for a classifier, every
  example's label and probabilities (``Classification.examples``, for ROC and PR curves)."""
  trained = workdir_lib.load(workdir, checkpoint)
  data = pipeline.load(trained.config, trained.tokenizer)
  if split not in data.full:
    raise UsageError(f'the data of {workdir} has no {split!r} split; it has '
                     f'{", ".join(data.full)}')
  ev = evaluator(trained)
  num_classes = trained.task.outputs(trained.config, trained.label_names)
  with parallel.activate(ev.mesh):
    if ev.predict_step is None:
      return trained, passes.losses(ev, trained.params, data.full[split]()), None
    metrics, found = passes.classify(ev, trained.params, data.full[split](), num_classes)
  return trained, metrics, found


def run(workdir: str, split: str = 'validation', checkpoint: str = 'auto',
        answers: bool = False, beams: int = 1, length_penalty: float = 1.0) -> dict[str, Any]:
  """The split's metrics at the chosen checkpoint; classifiers add ``confusion`` (rows: true
  label, columns: predicted, in the order of ``labels``). ``answers`` (instruction tuning,
  text-to-text) adds ``answer_accuracy``: each example's (last) answer generated greedily
  (or by a beam search of ``beams``, for text-to-text), exact match; text-to-text adds
  corpus BLEU and chrF, and for class labels how many outputs are no label word."""
  trained, metrics, found = scored(workdir, split, checkpoint)
  out = {'workdir': workdir, 'step': trained.step, 'split': split, **metrics}
  if answers:
    reads = trained.task.reads
    if reads not in ('conversation', 'text2text'):
      raise UsageError(f'--answers evaluates instruction tuning and text-to-text runs; '
                       f'{workdir} holds a {trained.config.objective} run')
    examples = pipeline.answer_examples(trained.config, trained.tokenizer, split)
    batch = trained.config.train.full_eval_batch_size
    if reads == 'conversation':
      out.update(text.answer_accuracy(trained.model, trained.params, trained.tokenizer,
                                      examples, batch))
    else:
      # class labels: the target words are the label vocabulary's (every one occurs)
      labels = () if trained.config.data.label_text else sorted({a for _, a in examples})
      out.update(text.seq2seq_scores(trained.model, trained.params, trained.tokenizer,
                                     examples, trained.config.seq2seq.target_len, batch, beams,
                                     length_penalty, labels))
  if found is not None:
    out.update(labels=list(trained.label_names), confusion=found.confusion.tolist())
  return out


def table(result: dict[str, Any]) -> str:
  """The result as a reader wants it: one metric per line, then the confusion matrix."""
  lines = [f'{result["workdir"]} at step {result["step"]}, {result["split"]} split']
  for name, value in result.items():
    if name == 'tokens':
      lines.append(f'  {name:<16} {int(value)}')
    elif isinstance(value, float):
      lines.append(f'  {name:<16} {value:.4f}')
    elif isinstance(value, int) and name != 'step':
      lines.append(f'  {name:<16} {value}')
  if 'confusion' in result:
    names = result['labels'] or [str(i) for i in range(len(result['confusion']))]
    width = max(8, *(len(n) + 1 for n in names))
    lines.append('confusion (rows: true, columns: predicted)')
    lines.append(' ' * width + ''.join(f'{n:>{width}}' for n in names))
    for name, row in zip(names, result['confusion']):
      lines.append(f'{name:>{width}}' + ''.join(f'{v:>{width}}' for v in row))
  return '\n'.join(lines)
