"""Evaluation: compiled eval steps and passes over splits (``passes``), the streaming
classification metrics (``metrics``), checkpoint selection (``selection``), and ``llm-jax
eval`` of a workdir (``report``)."""
