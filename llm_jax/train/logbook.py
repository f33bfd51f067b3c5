"""Where metrics go: the workdir's metrics.jsonl (always), TensorBoard events, the console.

Only process 0 writes. On resume the JSONL is cut back to the restored step, so a resumed
run's record equals an uninterrupted run's, line for line.
"""

from __future__ import annotations

import json
import os

import jax

from llm_jax.workdir import layout


class Logbook:
  def __init__(self, workdir: str, resume_step: int):
    self.enabled = jax.process_index() == 0
    self.path = os.path.join(workdir, layout.METRICS)
    self.tb = None
    if not self.enabled:
      return
    self._truncate(resume_step)
    from tensorboardX import SummaryWriter  # imported late: only process 0 needs it
    self.tb = SummaryWriter(os.path.join(workdir, layout.TENSORBOARD), purge_step=resume_step + 1)

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
