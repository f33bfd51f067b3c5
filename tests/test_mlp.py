"""The seeds' MLP on IDX images: the reader, the model, epochs, end to end on a tiny file."""

import gzip
import json
import os

import numpy as np
import pytest

from llm_jax import config as config_lib
from llm_jax import train
from llm_jax.data import features
from llm_jax.errors import UsageError
from llm_jax.evaluation import plots
from llm_jax.train import checks
from tests.conftest import REPO
from tests.test_plots import png_size


def write_idx(path, array, dtype_byte=0x08):
  header = bytes([0, 0, dtype_byte, array.ndim]) + np.array(array.shape, '>u4').tobytes()
  data = header + array.astype({0x08: '>u1', 0x0D: '>f4'}[dtype_byte]).tobytes()
  opener = gzip.open if str(path).endswith('.gz') else open
  with opener(path, 'wb') as f:
    f.write(data)


def write_images(root, name, count, seed):
  """``count`` 4x4 images of 3 classes, each class a bright quadrant plus noise."""
  rng = np.random.default_rng(seed)
  labels = rng.permutation(np.arange(count) % 3).astype(np.uint8)  # balanced
  images = rng.integers(0, 60, (count, 4, 4))
  for i, label in enumerate(labels):
    images[i, (label // 2) * 2:(label // 2) * 2 + 2, (label % 2) * 2:(label % 2) * 2 + 2] += 180
  write_idx(root / f'{name}-images-idx3-ubyte.gz', images)
  write_idx(root / f'{name}-labels-idx1-ubyte.gz', labels)
  return images, labels


def test_idx_reader_reads_what_was_written_and_refuses_other_files(tmp_path):
  images, labels = write_images(tmp_path, 'train', 10, 0)
  x, y = features.read_examples(str(tmp_path / 'train-images-idx3-ubyte.gz'))
  assert x.shape == (10, 16) and x.dtype == np.float32
  np.testing.assert_allclose(x, images.reshape(10, 16) / 255.0, rtol=1e-6)
  np.testing.assert_array_equal(y, labels)
  floats = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
  write_idx(tmp_path / 'f.idx', floats, 0x0D)  # big-endian floats, uncompressed
  np.testing.assert_array_equal(features.read_idx(str(tmp_path / 'f.idx')), floats)
  (tmp_path / 'bad.idx').write_bytes(b'PK\x03\x04rest')
  with pytest.raises(UsageError, match=r'bad\.idx: not an IDX file'):
    features.read_idx(str(tmp_path / 'bad.idx'))
  (tmp_path / 'cut.idx').write_bytes((tmp_path / 'f.idx').read_bytes()[:-4])
  with pytest.raises(UsageError, match='cut or corrupt'):
    features.read_idx(str(tmp_path / 'cut.idx'))


def mlp_config(root, *overrides):
  return checks.load(os.path.join(REPO, 'configs/fashion_mnist_mlp.py'), [
      'data.corpus=files', 'data.format=idx', f'data.files.train={root}/train-images-idx3-ubyte.gz',
      f'data.files.test={root}/t10k-images-idx3-ubyte.gz', 'data.val_fraction=0.2',
      'model.mlp_hidden=(32,)', 'train.batch_size=8', 'train.epochs=3',
      'train.eval_every_epochs=1', 'train.checkpoint_every_epochs=0', 'optim.lr=0.01',
      *overrides])


def test_mlp_trains_for_its_epochs_and_evaluates_each(tmp_path):
  write_images(tmp_path, 'train', 120, 0)
  write_images(tmp_path, 't10k', 30, 1)
  config = mlp_config(tmp_path)
  final = train.run(config, str(tmp_path / 'run'), progress=False)
  # 96 training images (8 of each class's 40 held out) in batches of 8: 12 steps an epoch
  assert final['step'] == 36
  saved = config_lib.from_json((tmp_path / 'run/config.json').read_text())
  assert saved.train.steps == 36 and saved.train.eval_every == 12
  rows = [json.loads(line) for line in (tmp_path / 'run/metrics.jsonl').open()]
  assert [r['step'] for r in rows if r['split'] == 'val_full'] == [12, 24, 36]
  assert final['test_full_accuracy'] > 0.9 and final['val_full_examples'] == 24
  # a classifier workdir's ROC curves and confusion matrix, one PNG each of the asked size
  for kind in ('roc', 'confusion'):
    out = plots.classifier(str(tmp_path / 'run'), str(tmp_path / f'{kind}.png'), kind,
                           split='test', size=(600, 500))
    assert png_size(out) == (600, 500)
  # a config of another kind on these inputs is refused in one line
  with pytest.raises(config_lib.ConfigError, match='numeric inputs'):
    mlp_config(tmp_path, 'model.kind=encoder', 'model.mlp_hidden=()')
