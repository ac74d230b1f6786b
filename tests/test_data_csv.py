import data_fixtures as fx
import polars as pl
import pytest

from repdrift.data import build_dataset
from repdrift.errors import DataError


def test_seeded_split(tmp_path):
    root = fx.labelled_csv(tmp_path)
    ds = build_dataset("csv", root)
    assert ds.classes == ["cat", "dog", "owl"] and ds.task == "multiclass"
    assert dict(ds.manifest.group_by("split").len().rows()) == {"train": 24, "val": 3, "test": 3}
    assert ds.manifest["path"][0] == str(tmp_path / "imgs/cat/0.png")
    assert build_dataset("csv", root / "labels.csv").manifest.equals(ds.manifest)  # root may be the file


def test_split_column_and_renamed_columns(tmp_path):
    root = fx.labelled_csv(tmp_path, classes=("no", "yes"), split=True)
    text = (root / "labels.csv").read_text().replace("path,label,split", "file,y,fold")
    (root / "labels.csv").write_text(text)
    ds = build_dataset("csv", root, path_column="file", label_column="y", split_column="fold")
    assert ds.task == "binary"
    assert ds.manifest.filter(pl.col("sample_id") == "imgs/yes/2.png")["split"].to_list() == ["val"]


def test_numeric_labels_and_class_names(tmp_path):
    (tmp_path / "labels.csv").write_text("path,label\n" + "".join(f"{i}.png,{i % 3}\n" for i in range(30)))
    for i in range(30):
        fx.image(tmp_path / f"{i}.png")
    assert build_dataset("csv", tmp_path).classes == ["0", "1", "2"]
    ds = build_dataset("csv", tmp_path, classes=["a", "b", "c"])
    assert ds.manifest.filter(pl.col("sample_id") == "4.png")["label"].to_list() == [1]


def test_errors(tmp_path):
    with pytest.raises(DataError, match="labels.csv: file not found; expected a CSV with columns path,label"):
        build_dataset("csv", tmp_path)
    root = fx.labelled_csv(tmp_path)
    with pytest.raises(DataError, match="labels.csv: unknown label 'cat' in column 'label'"):
        build_dataset("csv", root, classes=["dog", "owl"])
    with pytest.raises(DataError, match="labels.csv: missing column\\(s\\) file"):
        build_dataset("csv", root, path_column="file")
    (root / "imgs/dog/3.png").unlink()
    with pytest.raises(DataError, match="labels.csv: lists 1 image\\(s\\) not found in .*imgs/dog, e.g. '3.png'"):
        build_dataset("csv", root)
    (root / "labels.csv").write_text("path,label,split\nimgs/cat/0.png,cat,dev\n")
    with pytest.raises(DataError, match="labels.csv: split 'dev' in column 'split'"):
        build_dataset("csv", root)
    (root / "labels.csv").write_text("path,label,split\nimgs/cat/0.png,cat,train\n")
    with pytest.raises(DataError, match="labels.csv: no test images"):
        build_dataset("csv", root)
