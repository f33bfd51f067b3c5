"""Where metrics go: the workdir's metrics.jsonl (always), TensorBoard events, the console,
and Weights & Biases when ``train.wandb_project`` names a project.

Only process 0 writes. On resume the JSONL is cut back to the restored step, so a resumed
run's record equals an uninterrupted run's, line for line; a W&B run resumes under the id the
workdir keeps (``wandb_id``).
"""

from __future__ import annotations

import json
import os
import uuid

import jax

from llm_jax import fileio
from llm_jax.errors import UsageError
from llm_jax.workdir import layout


class Logbook:
  def __init__(self, workdir: str, resume_step: int, wandb_project: str = '',
               config: dict | None = None):
    self.enabled = jax.process_index() == 0
    self.path = os.path.join(workdir, layout.METRICS)
    self.tb = self.wandb = None
    if not self.enabled:
      return
    self._truncate(resume_step)
    from tensorboardX import SummaryWriter  # imported late: only process 0 needs it
    self.tb = SummaryWriter(os.path.join(workdir, layout.TENSORBOARD), purge_step=resume_step + 1)
    if wandb_project:
      self.wandb = _wandb_run(workdir, wandb_project, config or {})

  def _truncate(self, resume_step: int) -> None:
    if not os.path.exists(self.path):
      return
    with open(self.path) as f:
      kept = []
      for line in f:
        try:
          if json.loads(line)['step'] <= resume_step:
            kept.append(line)
        except (ValueError, KeyError):
          break  # a line cut by a kill ends the usable record
    tmp = self.path + '.tmp'
    with open(tmp, 'w') as f:
      f.writelines(kept)
    os.replace(tmp, self.path)

  def write(self, step: int, split: str, metrics: dict[str, float]) -> None:
    if not self.enabled:
      return
    with open(self.path, 'a') as f:
      f.write(json.dumps({'step': step, 'split': split, **metrics}) + '\n')
    for name, value in metrics.items():
      self.tb.add_scalar(f'{split}/{name}', value, step)
    if self.wandb is not None:
      self.wandb.log({f'{split}/{name}': value for name, value in metrics.items()}, step=step)

  def summary(self) -> dict[str, float]:
    """The run's latest figures: ``step`` and ``<split>_<metric>`` from each split's last line."""
    out: dict[str, float] = {}
    if not os.path.exists(self.path):
      return out
    with open(self.path) as f:
      for line in f:
        entry = json.loads(line)
        split = entry.pop('split')
        out['step'] = max(out.get('step', 0), entry.pop('step'))
        out.update({f'{split}_{k}': v for k, v in entry.items()})
    return out

  def close(self) -> None:
    if self.tb is not None:
      self.tb.close()
    if self.wandb is not None:
      self.wandb.finish()
      self.wandb = None


def _wandb_run(workdir: str, project: str, config: dict):
  """A W&B run named after the workdir and resumed by the id kept there. W&B's steps only
  grow: the steps a resumed run logs again (after its checkpoint, before the kill) keep their
  first values there; metrics.jsonl is the exact record."""
  try:
    import wandb
  except ImportError:
    raise UsageError(f'train.wandb_project={project!r} logs to Weights & Biases, which is not '
                     'installed: pip install wandb (or set train.wandb_project="")') from None
  id_path = os.path.join(workdir, layout.WANDB_ID)
  if os.path.exists(id_path):
    with open(id_path) as f:
      run_id = f.read().strip()
  else:
    run_id = uuid.uuid4().hex[:12]
    fileio.write_atomic(id_path, run_id)
  return wandb.init(project=project, name=os.path.basename(os.path.abspath(workdir)),
                    dir=workdir, config=config, id=run_id, resume='allow')
