"""Training: state, optimizers, checkpoints, logging and the loop (``run``)."""

from llm_jax.train.loop import run

__all__ = ['run']
