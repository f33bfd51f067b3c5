"""``python -m llm_jax``: the ``llm-jax`` command."""

from llm_jax.cli import main

main()
