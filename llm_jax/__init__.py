"""llm_jax: Transformer language models from scratch and finetuning, in JAX/Flax."""
