"""The architecture as the source shows it: layers that import only downwards, one owner per
idea. Read with ``ast`` (nothing is imported), so a violation names its file and line."""

import ast
import os
import pathlib

import pytest

from tests.conftest import REPO

PACKAGE = pathlib.Path(REPO) / 'llm_jax'


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(REPO).with_suffix('').parts
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob('*.py')}
PACKAGES = {name for name, p in MODULES.items() if p.name == '__init__.py'}


def _in(module: str, package: str) -> bool:
  return module == package or module.startswith(package + '.')


def _targets(name: str) -> set[str]:
  """What importing ``name`` runs: the module and every package above it."""
  parts = name.split('.')
  return {'.'.join(parts[:i]) for i in range(2, len(parts) + 1)} & MODULES.keys()


def _imports(module: str) -> list[tuple[str, int]]:
  """(imported llm_jax module, line) for every import in ``module``, late ones included."""
  tree = ast.parse(MODULES[module].read_text())
  found = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found += [(t, node.lineno) for a in node.names for t in _targets(a.name)]
    elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith('llm_jax'):
      found += [(t, node.lineno) for t in _targets(node.module)]
      for alias in node.names:  # ``from llm_jax.data import pipeline`` imports a module
        found += [(t, node.lineno) for t in _targets(f'{node.module}.{alias.name}')]
  # a package is initialized before its submodules: importing an ancestor is no cycle
  return [(t, line) for t, line in found if not _in(module, t)]


GRAPH = {m: sorted({t for t, _ in _imports(m)}) for m in MODULES}


def test_no_module_is_part_of_an_import_cycle():
  state: dict[str, int] = {}  # 1: on the current path, 2: done
  path: list[str] = []

  def visit(m):
    state[m] = 1
    path.append(m)
    for t in GRAPH[m]:
      if state.get(t) == 1:
        pytest.fail('import cycle: ' + ' -> '.join(path[path.index(t):] + [t]))
      if t not in state:
        visit(t)
    path.pop()
    state[m] = 2

  for m in sorted(MODULES):
    if m not in state:
      visit(m)


@pytest.mark.parametrize('lower, forbidden', [
    ('llm_jax.models', ('llm_jax.train', 'llm_jax.data', 'llm_jax.workdir', 'llm_jax.cli')),
    ('llm_jax.objectives', ('llm_jax.train', 'llm_jax.data', 'llm_jax.workdir', 'llm_jax.cli')),
    ('llm_jax.tasks', ('llm_jax.train', 'llm_jax.data', 'llm_jax.workdir', 'llm_jax.cli')),
    ('llm_jax.convert', ('llm_jax.train', 'llm_jax.cli')),
    ('llm_jax.workdir', ('llm_jax.train', 'llm_jax.evaluation', 'llm_jax.cli')),
    ('llm_jax.config', ('llm_jax.train', 'llm_jax.data', 'llm_jax.tasks', 'llm_jax.workdir')),
])
def test_layers_import_only_downwards(lower, forbidden):
  wrong = sorted({f'{MODULES[m].relative_to(REPO)}:{line} imports {t}'
           for m in MODULES if _in(m, lower) for t, line in _imports(m)
           if any(_in(t, f) for f in forbidden)})
  assert not wrong, '\n'.join(wrong)


def _names_objective(node: ast.AST) -> bool:
  return ((isinstance(node, ast.Attribute) and node.attr == 'objective') or
          (isinstance(node, ast.Name) and node.id == 'objective'))


def test_no_module_outside_the_task_registry_compares_objective_names():
  wrong = []
  for m, path in MODULES.items():
    if _in(m, 'llm_jax.tasks'):
      continue
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Compare) and any(map(_names_objective,
                                                    [node.left, *node.comparators])):
        wrong.append(f'{path.relative_to(REPO)}:{node.lineno}')
  assert not wrong, 'objective compared outside llm_jax.tasks at ' + ', '.join(wrong)


def test_workdir_file_names_are_spelled_only_in_the_workdir_package():
  names = ("'metrics.jsonl'", "'labels.json'", "'checkpoints'", "'tensorboard'",
           "'model_config.json'", "'params.safetensors'", "'hf_config.json'")
  wrong = [f'{p.relative_to(REPO)}: {n}' for m, p in MODULES.items()
           if not _in(m, 'llm_jax.workdir') for n in names if n in p.read_text()]
  assert not wrong, '\n'.join(wrong)


def test_every_command_is_its_own_module_in_the_cli_package():
  from llm_jax import cli
  commands = {c.__name__.rsplit('.', 1)[1] for c in cli.COMMANDS}
  modules = {p.stem for p in (PACKAGE / 'cli').glob('*.py')} - {'__init__', '__main__', 'args'}
  assert commands == modules
  assert not [m for m in os.listdir(PACKAGE) if m in ('main.py', 'bench.py', 'predict.py')]


def test_ruff_finds_nothing():
  """The lint configuration of pyproject.toml holds for the whole repository."""
  import subprocess
  import sys
  done = subprocess.run([sys.executable, '-m', 'ruff', 'check', '--no-cache', REPO],
                        capture_output=True, text=True, check=False)
  assert done.returncode == 0, done.stdout[-3000:]
