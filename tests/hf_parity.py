"""Parity with Hugging Face: a small random ``transformers`` model is saved, converted in with
``llm-jax convert --from-hf``, written back with ``--to-hf`` and reloaded by ``transformers``;
logits are compared in float32 on random rows with padding, at the positions that are not
padding (padding's own outputs are whatever each library makes of them)."""

import numpy as np
import torch

from llm_jax.convert import directories
from llm_jax.workdir import imported

LENGTHS = (10, 7, 4)  # three rows, right-padded to 10
TOLERANCE = 1e-5


def padded_batch(vocab_size: int, pad_id: int, seed: int = 0):
  """Random ids (avoiding pad and the few lowest ids) and the attention mask."""
  mask = np.array([[1] * n + [0] * (max(LENGTHS) - n) for n in LENGTHS])
  ids = np.random.default_rng(seed).integers(3, vocab_size, mask.shape)
  return np.where(mask == 1, ids, pad_id), mask


def convert_both_ways(hf_model, tmp_path):
  """(our config, our params, the model transformers loads back from ``--to-hf``)."""
  hf_model.save_pretrained(tmp_path / 'hf')
  directories.import_hf(str(tmp_path / 'hf'), str(tmp_path / 'ours'))
  cfg, params, _ = imported.read(str(tmp_path / 'ours'))
  directories.export_hf(str(tmp_path / 'ours'), str(tmp_path / 'back'))
  return cfg, params, type(hf_model).from_pretrained(tmp_path / 'back').eval()


def torch_logits(model, **inputs) -> np.ndarray:
  with torch.no_grad():
    return model(**{k: torch.from_numpy(np.asarray(v)) for k, v in inputs.items()}).logits.numpy()


def assert_close(ours, theirs, mask, tolerance: float = TOLERANCE) -> None:
  diff = np.abs(np.asarray(ours) - theirs)[np.asarray(mask) == 1]
  assert diff.max() <= tolerance, f'max abs difference {diff.max():.3g} > {tolerance}'


def assert_parity_both_ways(hf_model, tmp_path, randomize: tuple[str, ...] = (),
                            mean: float = 0.0):
  """Converts ``hf_model`` in and back out, and checks our logits against both on a padded
  batch; parameters whose names end with ``randomize`` are drawn first from N(mean, 0.5)
  (Hugging Face starts norms and biases at constants, which would hide a misplaced one).
  Returns (our config, our params, the reloaded model)."""
  import jax

  from llm_jax import models
  with torch.no_grad():
    for name, p in hf_model.named_parameters():
      if randomize and name.endswith(randomize):
        p.normal_(mean, 0.5)
  cfg, params, reloaded = convert_both_ways(hf_model, tmp_path)
  ids, mask = padded_batch(cfg.vocab_size, pad_id=0)
  ours = jax.jit(models.build(cfg).apply)({'params': params}, ids, None, mask)
  for model in (hf_model, reloaded):
    assert_close(ours, torch_logits(model, input_ids=ids, attention_mask=mask), mask)
  return cfg, params, reloaded
