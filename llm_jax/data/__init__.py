"""Data: corpora, tokenizers and the batches the training loop consumes (no model code)."""
