"""``llm-jax train``: train or resume a model in a workdir."""

from __future__ import annotations

import json

from llm_jax.cli import args as args_lib
from llm_jax.errors import UsageError


def add(sub) -> None:
  t = sub.add_parser('train', help='train or resume a model in a workdir')
  args_lib.add_config(t)
  t.add_argument('--workdir', required=True, help='checkpoints, metrics and logs go here')
  t.add_argument('--distributed', action='store_true',
                 help='join a multi-process run (jax.distributed; auto-detected on TPU pods '
                 'and SLURM unless --coordinator is given)')
  t.add_argument('--coordinator', default='', help='host:port of process 0')
  t.add_argument('--num-processes', type=int, default=0)
  t.add_argument('--process-id', type=int, default=-1)
  t.add_argument('--profile', default='', metavar='START:STOP',
                 help='write a jax.profiler trace of steps START..STOP-1 (or N: the 3 steps '
                 'after step N) to WORKDIR/profile')
  t.set_defaults(fn=run)


def profile_steps(spec: str) -> tuple[int, int] | None:
  if not spec:
    return None
  try:
    start, _, stop = spec.partition(':')
    start, stop = int(start), int(stop) if stop else int(start) + 3
  except ValueError:
    raise UsageError(f'--profile={spec!r}: give START:STOP or N (steps)') from None
  if not 0 <= start < stop:
    raise UsageError(f'--profile={spec!r}: need 0 <= START < STOP')
  return start, stop


def run(args, overrides) -> None:
  from llm_jax import parallel, train
  config = args_lib.config(args, overrides)  # a bad config fails before joining a cluster
  profile = profile_steps(args.profile)
  if args.distributed:
    parallel.initialize_distributed(args.coordinator, args.num_processes, args.process_id)
  print(json.dumps(train.run(config, args.workdir, profile=profile), indent=2))
