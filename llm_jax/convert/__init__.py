"""Hugging Face interop: checkpoints of GPT-2, BERT, RoBERTa, T5 and LLaMA in and out.

It maps trees of parameters and knows no training loop: ``hf.from_hf`` gives a config and a
parameter tree, ``hf.to_hf`` takes them back to Hugging Face's names and layout, ``files``
reads and writes the directories, ``cli`` is ``llm-jax convert``. Nothing is imported here,
so that building the CLI's parser stays cheap.
"""
