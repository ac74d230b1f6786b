"""Dataset validation, the write/read round trip, kind/option dispatch, and the torch-free import."""

import json
import subprocess
import sys

import data_fixtures as fx
import polars as pl
import pytest

from repdrift.data import KINDS, Dataset, build_dataset, build_manifest, read_dataset, write_dataset
from repdrift.data.manifest import make_dataset
from repdrift.errors import ConfigError, DataError


def rows(**over):
    base = {
        "sample_id": ["a", "b", "c"],
        "path": ["/x/a.png", "/x/b.png", "/x/c.png"],
        "split": ["train", "val", "test"],
        "label": [0, 1, 1],
    }
    return base | over


def test_kinds():
    assert set(KINDS) == {"isic2018", "aptos2019", "medfm_chest", "medfm_colon", "medfm_endo", "imagenet", "csv"}


def test_make_dataset_schema():
    ds = make_dataset(rows(), "binary", ["neg", "pos"], "csv")
    assert ds.manifest.schema == pl.Schema(
        {"sample_id": pl.String, "path": pl.String, "split": pl.String, "label": pl.Int64}
    )


def test_multilabel_schema():
    r = rows()
    del r["label"]
    ds = make_dataset(r | {"labels": [[0, 1, 0], [1, 1, 0], [0, 0, 1]]}, "multilabel", ["a", "b", "c"], "x")
    assert ds.manifest.schema["labels"] == pl.List(pl.Int8)


@pytest.mark.parametrize(
    "change, message",
    [
        (rows(sample_id=["a", "a", "c"]), "occurs more than once"),
        (rows(path=["x/a.png", "/x/b.png", "/x/c.png"]), "not absolute"),
        (rows(split=["train", "valid", "test"]), "'valid' is not one of"),
        (rows(split=["train", "val", "val"]), "split 'test' is empty"),
        (rows(label=[0, 1, 2]), "label outside 0..1"),
    ],
)
def test_validation_errors(change, message):
    with pytest.raises(DataError, match=message):
        make_dataset(change, "binary", ["neg", "pos"], "csv")


def test_multilabel_wrong_length():
    r = rows()
    del r["label"]
    with pytest.raises(DataError, match="expected 3"):
        make_dataset(r | {"labels": [[0, 1, 0], [1, 1], [0, 0, 1]]}, "multilabel", ["a", "b", "c"], "x")


def test_round_trip(tmp_path):
    ds = make_dataset(rows(), "binary", ["neg", "pos"], "csv")
    out = write_dataset(ds, tmp_path / "ds")
    assert sorted(p.name for p in out.iterdir()) == ["classes.json", "manifest.parquet"]  # no temp files left
    assert json.loads((out / "classes.json").read_text()) == {
        "kind": "csv",
        "task": "binary",
        "classes": ["neg", "pos"],
    }
    back = read_dataset(out)
    assert isinstance(back, Dataset)
    assert (back.kind, back.task, back.classes) == ("csv", "binary", ["neg", "pos"])
    assert back.manifest.equals(ds.manifest)


def test_round_trip_multilabel(tmp_path):
    ds = build_dataset("medfm_chest", fx.medfm(tmp_path / "chest", "medfm_chest"))
    back = read_dataset(write_dataset(ds, tmp_path / "out"))
    assert back.manifest.equals(ds.manifest) and back.classes == ds.classes


def test_read_errors(tmp_path):
    with pytest.raises(DataError, match="classes.json: missing"):
        read_dataset(tmp_path)
    out = write_dataset(make_dataset(rows(), "binary", ["neg", "pos"], "csv"), tmp_path / "d")
    (out / "classes.json").write_text("{not json")
    with pytest.raises(DataError, match="classes.json: cannot read"):
        read_dataset(out)
    (out / "classes.json").write_text(json.dumps({"kind": "csv", "task": "binary", "classes": ["a", "b", "c"]}))
    with pytest.raises(DataError, match=f"{out}: .*3 classes for task 'binary'"):
        read_dataset(out)
    (out / "manifest.parquet").write_bytes(b"PAR1 broken")
    with pytest.raises(DataError, match="manifest.parquet: cannot read parquet"):
        read_dataset(out)


def test_dispatch_errors(tmp_path):
    with pytest.raises(ConfigError, match="kind 'nope' is unknown"):
        build_dataset("nope", tmp_path)
    with pytest.raises(ConfigError, match="has no option 'sed'"):
        build_dataset("aptos2019", tmp_path, sed=1)


def test_build_manifest_and_relative_root(tmp_path, monkeypatch):
    fx.imagenet(tmp_path / "inet")
    monkeypatch.chdir(tmp_path)
    m = build_manifest("imagenet", "inet")
    assert m["path"].str.starts_with(str(tmp_path)).all()


def test_import_is_torch_free():
    code = "import sys, repdrift.data, repdrift.data.demo; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
