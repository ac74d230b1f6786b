import data_fixtures as fx
import polars as pl
import pytest

from repdrift.data import build_dataset
from repdrift.errors import ConfigError, DataError


def split_counts(ds):
    return dict(ds.manifest.group_by("split").len().rows())


def test_chest_official(tmp_path):
    root = fx.medfm(tmp_path, "medfm_chest")
    ds = build_dataset("medfm_chest", root)
    assert ds.task == "multilabel" and len(ds.classes) == 19 and ds.classes[10] == "TB"
    assert split_counts(ds) == {"train": 6, "val": 3, "test": 4}
    first_line = (root / "train_20.txt").read_text().splitlines()[0]
    name, labels = first_line.split(" ")
    row = ds.manifest.row(0, named=True)
    assert row["sample_id"] == name and row["path"] == str(root / "images" / name)
    assert row["labels"] == [int(v) for v in labels.split(",")]


def test_endo_space_separated(tmp_path):
    root = fx.medfm(tmp_path, "medfm_endo")
    ds = build_dataset("medfm_endo", root)
    assert ds.classes == ["ulcer", "erosion", "polyp", "tumor"]
    name, *labels = (root / "val_20.txt").read_text().splitlines()[0].split(" ")
    assert ds.manifest.filter(pl.col("sample_id") == name)["labels"].to_list() == [[int(v) for v in labels]]


def test_colon_names_with_spaces(tmp_path):
    root = fx.medfm(tmp_path, "medfm_colon")
    ds = build_dataset("medfm_colon", root)
    assert ds.task == "binary" and ds.classes == ["negative", "positive"]
    assert ds.manifest["sample_id"].str.contains(" ").all()
    line = (root / "test_WithLabel.txt").read_text().splitlines()[1]
    assert ds.manifest.filter(pl.col("sample_id") == line.rsplit(" ", 1)[0])["label"].to_list() == [int(line[-1])]


@pytest.mark.parametrize("kind", ["medfm_chest", "medfm_colon", "medfm_endo"])
def test_disjoint_and_paper_need_labelled_test_without_label(tmp_path, kind):
    public = fx.medfm(tmp_path / "public", kind)
    for split in ("disjoint", "paper"):
        with pytest.raises(DataError, match="test_WithoutLabel.txt: 5 line\\(s\\) without labels.*split='official'"):
            build_dataset(kind, public, split=split)
    full = fx.medfm(tmp_path / "full", kind, unlabelled_test=False)
    disjoint = build_dataset(kind, full, split="disjoint")
    assert split_counts(disjoint) == {"train": 6 + 4, "val": 3, "test": 5}
    paper = build_dataset(kind, full, split="paper")
    assert split_counts(paper) == {"train": 9 + 4, "test": 4 + 5}  # test_WithLabel in both, as in the paper
    shared = paper.manifest.filter(pl.col("sample_id").str.ends_with("@test"))
    assert shared.height == 4 and shared["split"].unique().to_list() == ["test"]


def test_class_override(tmp_path):
    root = fx.medfm(tmp_path, "medfm_colon")
    assert build_dataset("medfm_colon", root, classes=["negtive", "positive"]).classes == ["negtive", "positive"]
    with pytest.raises(ConfigError, match="3 class names given; the list files carry 2"):
        build_dataset("medfm_colon", root, classes=["a", "b", "c"])
    with pytest.raises(ConfigError, match="split 'random' is not one of"):
        build_dataset("medfm_colon", root, split="random")


def test_wrong_number_of_labels(tmp_path):
    root = fx.medfm(tmp_path, "medfm_chest")
    lines = (root / "val_20.txt").read_text().splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0]  # 18 labels
    (root / "val_20.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="val_20.txt: line 2 has 18 label value\\(s\\).*expected lines '<name>.png 0,0"):
        build_dataset("medfm_chest", root)


def test_bad_label_value(tmp_path):
    root = fx.medfm(tmp_path, "medfm_endo")
    lines = (root / "train_20.txt").read_text().splitlines()
    lines[0] = lines[0][:-1] + "2"
    (root / "train_20.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="train_20.txt: line 1 has 4 label value"):
        build_dataset("medfm_endo", root)


def test_missing_pieces(tmp_path):
    with pytest.raises(DataError, match="images: folder not found; expected a MedFM dataset folder"):
        build_dataset("medfm_endo", tmp_path)
    root = fx.medfm(tmp_path, "medfm_endo")
    (root / "test_WithLabel.txt").unlink()
    with pytest.raises(DataError, match="test_WithLabel.txt: file not found; expected a MedFM list file"):
        build_dataset("medfm_endo", root)


def test_listed_image_absent(tmp_path):
    root = fx.medfm(tmp_path, "medfm_colon")
    name = (root / "train_20.txt").read_text().splitlines()[2].rsplit(" ", 1)[0]
    (root / "images" / name).unlink()
    with pytest.raises(DataError, match=f"train_20.txt: lists 1 image\\(s\\) not found in .*'{name}'"):
        build_dataset("medfm_colon", root)


def test_empty_list_and_overlap(tmp_path):
    root = fx.medfm(tmp_path, "medfm_chest")
    (root / "val_20.txt").write_text("\n")
    with pytest.raises(DataError, match="val_20.txt: empty list"):
        build_dataset("medfm_chest", root)
    (root / "val_20.txt").write_text((root / "train_20.txt").read_text())
    with pytest.raises(DataError, match="val_20.txt: 'img_0000.png' is also listed in .*train_20.txt"):
        build_dataset("medfm_chest", root)


def test_line_without_image_name(tmp_path):
    root = fx.medfm(tmp_path, "medfm_colon")
    (root / "val_20.txt").write_text("just some words 1\n")
    with pytest.raises(DataError, match="val_20.txt: line 1 'just some words 1' has no image name"):
        build_dataset("medfm_colon", root)
