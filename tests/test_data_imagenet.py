import data_fixtures as fx
import polars as pl
import pytest

from repdrift.data import build_dataset
from repdrift.errors import ConfigError, DataError


def test_image_folder(tmp_path):
    root = fx.imagenet(tmp_path)
    (root / "train" / "n01440764" / "notes.txt").write_text("not an image")
    fx.image(root / "train" / "n01443537" / "extra.png")  # any image extension counts
    ds = build_dataset("imagenet", root)
    assert ds.classes == ["n01440764", "n01443537", "n01484850"] and ds.task == "multiclass"
    m = ds.manifest
    assert dict(m.group_by("split").len().rows()) == {"train": 19, "test": 9}
    row = m.filter(pl.col("sample_id") == "val/n01484850/ILSVRC2012_val_00000200.JPEG").row(0, named=True)
    assert row["label"] == 2 and row["split"] == "test"


def test_balanced_subsets_are_seeded(tmp_path):
    root = fx.imagenet(tmp_path, n_train=10, n_val=5)
    a = build_dataset("imagenet", root, bank_per_class=4, val_per_class=2).manifest
    per_class = a.group_by("split", "label").len().sort("split", "label")
    assert per_class["len"].to_list() == [2, 2, 2, 4, 4, 4]  # test, then train
    assert a.equals(build_dataset("imagenet", root, bank_per_class=4, val_per_class=2).manifest)
    b = build_dataset("imagenet", root, bank_per_class=4, val_per_class=2, seed=1).manifest
    assert not a["sample_id"].equals(b["sample_id"])
    big = build_dataset("imagenet", root, bank_per_class=50).manifest  # more than available: all of them
    assert big.filter(pl.col("split") == "train").height == 30


def test_errors(tmp_path):
    with pytest.raises(DataError, match="train: folder not found; expected an ImageFolder"):
        build_dataset("imagenet", tmp_path)
    root = fx.imagenet(tmp_path)
    fx.image(root / "val" / "n99999999" / "x.JPEG")
    with pytest.raises(DataError, match="val/n99999999: class folder not in"):
        build_dataset("imagenet", root)
    (root / "val" / "n99999999" / "x.JPEG").unlink()
    (root / "val" / "n99999999").rmdir()
    (root / "train" / "n00000000").mkdir()
    with pytest.raises(DataError, match="train/n00000000: no images"):
        build_dataset("imagenet", root)
    with pytest.raises(ConfigError, match="bank_per_class=0"):
        build_dataset("imagenet", root, bank_per_class=0)
