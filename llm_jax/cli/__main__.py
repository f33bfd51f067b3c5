"""``python -m llm_jax.cli``: the ``llm-jax`` command (as the subprocess tests start it)."""

from llm_jax.cli import main

main()
