import data_fixtures as fx
import polars as pl
import pytest

from repdrift.data import build_dataset
from repdrift.errors import DataError


def test_stratified_split_and_split_file(tmp_path):
    root = fx.aptos(tmp_path / "aptos", per_grade=(20, 10, 10, 10, 10))
    split_file = tmp_path / "splits" / "aptos_split.csv"
    ds = build_dataset("aptos2019", root, split_file=split_file)
    m = ds.manifest
    assert (ds.task, len(ds.classes)) == ("multiclass", 5)
    assert m.height == 60 and m["path"].str.ends_with(".png").all()
    counts = dict(m.group_by("split").len().rows())
    assert counts == {"train": 48, "val": 6, "test": 6}
    # stratified: every grade in every split (each grade has >= 5 images)
    assert m.group_by("split").agg(pl.col("label").n_unique())["label"].to_list() == [5, 5, 5]
    written = pl.read_csv(split_file)
    assert written.columns == ["id_code", "split"] and written.height == 60
    # the file wins over the seed once written
    again = build_dataset("aptos2019", root, split_file=split_file, seed=123)
    assert again.manifest.equals(m)


def test_seed_changes_split_deterministically(tmp_path):
    root = fx.aptos(tmp_path)
    a, b = (build_dataset("aptos2019", root, seed=s).manifest["split"] for s in (0, 0))
    c = build_dataset("aptos2019", root, seed=1).manifest["split"]
    assert a.equals(b) and not a.equals(c)


def test_row_order_does_not_matter(tmp_path):
    root = fx.aptos(tmp_path)
    before = build_dataset("aptos2019", root).manifest
    lines = (root / "train.csv").read_text().splitlines()
    (root / "train.csv").write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")
    assert build_dataset("aptos2019", root).manifest.equals(before)


def test_bad_split_file(tmp_path):
    root = fx.aptos(tmp_path / "a")
    f = tmp_path / "split.csv"
    f.write_text("id_code,split\n0000c0ffee00,train\n")
    with pytest.raises(DataError, match="split.csv: has no split for 49 id_code"):
        build_dataset("aptos2019", root, split_file=f)
    f.write_text("id_code,split\n0000c0ffee00,holdout\n")
    with pytest.raises(DataError, match="split.csv: split 'holdout' is not one of"):
        build_dataset("aptos2019", root, split_file=f)


def test_errors(tmp_path):
    with pytest.raises(DataError, match="train_images: folder not found"):
        build_dataset("aptos2019", tmp_path)
    root = fx.aptos(tmp_path)
    (root / "train.csv").write_text("id_code,grade\nx,1\n")
    with pytest.raises(DataError, match="train.csv: missing column\\(s\\) diagnosis"):
        build_dataset("aptos2019", root)
    (root / "train.csv").write_text("id_code,diagnosis\n0000c0ffee00,7\n")
    with pytest.raises(DataError, match="train.csv: diagnosis '7' for '0000c0ffee00'; expected 0-4"):
        build_dataset("aptos2019", root)
    (root / "train.csv").write_text("id_code,diagnosis\nmissing01,1\n")
    with pytest.raises(DataError, match="train.csv: lists 1 image\\(s\\) not found .*'missing01.png'"):
        build_dataset("aptos2019", root)
