"""The demo generator end to end: read back through the real adapters, coverage, determinism, atomicity."""

import hashlib

import numpy as np
import pytest
from PIL import Image

from repdrift.data import build_dataset
from repdrift.data.demo import DEMO_KINDS, make_demo_data
from repdrift.errors import DataError

SMALL = dict(
    natural_classes=3,
    natural_train=4,
    natural_val=2,
    isic=(14, 14, 14),
    colon=(6, 4, 4, 4),
    chest=(10, 10, 10, 10),
    size=16,
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "demo"
    paths = make_demo_data(root)
    return root, paths, {name: build_dataset(DEMO_KINDS[name], path) for name, path in paths.items()}


def counts(ds):
    return dict(ds.manifest.group_by("split").len().rows())


def test_layout_and_counts(demo):
    root, paths, datasets = demo
    assert sorted(p.name for p in root.iterdir()) == ["demo.json", "isic2018", "medfm_chest", "medfm_colon", "natural"]
    assert not list(root.parent.glob(".demo.tmp-*"))
    assert counts(datasets["natural"]) == {"train": 1000, "test": 200}
    assert len(datasets["natural"].classes) == 10
    assert counts(datasets["isic2018"]) == {"train": 280, "val": 70, "test": 140}
    for name in ("medfm_colon", "medfm_chest"):
        assert counts(datasets[name]) == {"train": 200, "val": 60, "test": 100}
    assert (paths["isic2018"] / "ISIC2018_Task3_Training_Input" / "LICENSE.txt").is_file()


def test_image_formats(demo):
    _, _, datasets = demo
    for name, ext, mode in [
        ("natural", ".JPEG", "RGB"),
        ("isic2018", ".jpg", "RGB"),
        ("medfm_colon", ".png", "RGB"),
        ("medfm_chest", ".png", "L"),
    ]:
        path = datasets[name].manifest["path"][0]
        assert path.endswith(ext)
        with Image.open(path) as im:
            assert im.size == (32, 32) and im.mode == mode


def test_isic_every_class_in_every_split_and_imbalanced(demo):
    isic = demo[2]["isic2018"]
    per = isic.manifest.group_by("split", "label").len()
    assert per.height == 3 * 7 and per["len"].min() >= 2
    train = np.bincount(isic.split("train")["label"].to_numpy(), minlength=7)
    assert train.argmax() == isic.classes.index("NV") and train.max() >= 4 * train.min()


def test_colon_binary_with_spaces(demo):
    colon = demo[2]["medfm_colon"]
    assert colon.manifest["sample_id"].str.contains(" ").all()
    assert colon.manifest.group_by("split", "label").len().height == 6


def test_chest_label_coverage(demo):
    chest = demo[2]["medfm_chest"]
    for split in ("train", "val", "test"):
        y = np.array(chest.split(split)["labels"].to_list())
        assert y.shape[1] == 19 and y.sum(axis=0).min() >= 2
    prevalence = np.array(chest.manifest["labels"].to_list()).mean(axis=0)
    assert prevalence.min() > 0.08 and prevalence.max() < 0.4


def test_medfm_full_release_protocols(demo):
    paths = demo[1]
    for kind in ("medfm_colon", "medfm_chest"):
        assert counts(build_dataset(kind, paths[kind], split="disjoint")) == {"train": 300, "val": 60, "test": 100}
        assert counts(build_dataset(kind, paths[kind], split="paper")) == {"train": 360, "test": 200}


def tree_digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


def test_deterministic_and_replaceable(tmp_path):
    a = make_demo_data(tmp_path / "a", **SMALL, seed=3)
    make_demo_data(tmp_path / "b", **SMALL, seed=3)
    make_demo_data(tmp_path / "c", **SMALL, seed=4)
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b") != tree_digest(tmp_path / "c")
    assert build_dataset("isic2018", a["isic2018"]).manifest.height == 42
    make_demo_data(tmp_path / "a", **SMALL, seed=4)  # an earlier demo is replaced
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "c")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]


def test_refuses_to_replace_other_folders(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "precious.txt").write_text("keep")
    with pytest.raises(DataError, match="data: exists and is not a repdrift demo"):
        make_demo_data(tmp_path / "data", **SMALL)
    assert (tmp_path / "data" / "precious.txt").is_file()
