"""Speed and size: capacity planning from a config alone (``plan``) and measured steps
beside PyTorch (``bench``)."""
