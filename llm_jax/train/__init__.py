"""Training: config checks, the compiled setup (model, mesh, optimizer, jitted steps), the
loop (``run``), optimizers, freezing, logging, and cross-validation over folds."""

from llm_jax.train.loop import run

__all__ = ['run']
