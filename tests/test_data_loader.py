import data_fixtures as fx
import pytest
import torch
from torchvision.transforms import v2

from repdrift.data import build_dataset
from repdrift.data.images import load_image
from repdrift.data.loader import ManifestImages
from repdrift.errors import DataError

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


@pytest.mark.parametrize("keep", ["decoded", "transformed"])
def test_kept_images_are_loaded_once_and_give_the_same_tensors(tmp_path, monkeypatch, keep):
    import repdrift.data.loader as loader

    ds = build_dataset("imagenet", fx.imagenet(tmp_path))
    plain = ManifestImages(ds.manifest, TO_TENSOR, ds.task, 3)
    expected = [plain[i][0] for i in range(len(plain))]
    loads = []
    monkeypatch.setattr(loader, "load_image", lambda path: loads.append(path) or load_image(path))
    kept = ManifestImages(ds.manifest, TO_TENSOR, ds.task, 3, keep=keep)
    for _ in range(3):  # three epochs
        for i in range(len(kept)):
            assert torch.equal(kept[i][0], expected[i])
    assert len(loads) == len(kept)  # each image decoded once


def test_kept_images_stop_at_the_memory_budget(tmp_path, monkeypatch):
    import repdrift.data.loader as loader

    ds = build_dataset("imagenet", fx.imagenet(tmp_path))
    monkeypatch.setattr(loader, "KEEP_BYTES", 5 * 8 * 8 * 3)  # room for 5 decoded 8x8 RGB images
    kept = ManifestImages(ds.manifest, TO_TENSOR, ds.task, 3, keep="decoded")
    for i in range(len(kept)):
        kept[i]
    assert len(kept._kept) == 5
    with pytest.raises(ValueError, match="keep"):
        ManifestImages(ds.manifest, TO_TENSOR, ds.task, 3, keep="everything")
