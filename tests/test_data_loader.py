import pytest
import torch
from torchvision.transforms import v2

from repdrift.data import build_dataset
from repdrift.data.loader import ManifestImages
from repdrift.errors import DataError

import data_fixtures as fx

TO_TENSOR = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])


def test_multiclass_items(tmp_path):
    ds = build_dataset("imagenet", fx.imagenet(tmp_path))
    items = ManifestImages(ds.manifest, TO_TENSOR, ds.task, len(ds.classes))
    assert len(items) == ds.manifest.height
    image, target, index = items[7]
    assert image.shape == (3, 8, 8) and image.dtype == torch.float32
    assert target.dtype == torch.long and int(target) == ds.manifest["label"][7] and index == 7
    batch = next(iter(torch.utils.data.DataLoader(items, batch_size=4)))
    assert batch[1].dtype == torch.long and batch[2].tolist() == [0, 1, 2, 3]


def test_multilabel_items(tmp_path):
    ds = build_dataset("medfm_chest", fx.medfm(tmp_path, "medfm_chest"))
    items = ManifestImages(ds.manifest, TO_TENSOR, ds.task, 19)
    _, target, _ = items[0]
    assert target.dtype == torch.float32 and target.tolist() == [float(v) for v in ds.manifest["labels"][0]]
    with pytest.raises(DataError, match="expected 4"):
        ManifestImages(ds.manifest, TO_TENSOR, ds.task, 4)


def test_broken_image_raises_data_error(tmp_path):
    ds = build_dataset("imagenet", fx.imagenet(tmp_path))
    path = ds.manifest["path"][0]
    open(path, "wb").close()
    with pytest.raises(DataError, match="cannot read image \\(empty file\\)"):
        ManifestImages(ds.manifest, TO_TENSOR, ds.task, 3)[0]
