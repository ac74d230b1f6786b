"""The Dataset record every adapter returns, its validation, and its on-disk form.

A manifest has one row per image: ``sample_id`` (unique), ``path`` (absolute), ``split`` (train | val | test) and
either ``label`` (Int64 class index; multiclass and binary) or ``labels`` (List(Int8) of 0/1; multilabel).
On disk a dataset is ``manifest.parquet`` + ``classes.json`` (``{"kind", "task", "classes"}``), each written to
a temporary name and renamed, so a reader never sees a half-written file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from repdrift.errors import DataError
from repdrift.formats.atomic import atomic_write

TASKS = ("multiclass", "binary", "multilabel")
SPLITS = ("train", "val", "test")
# Splits that must hold at least one image; val may be empty (ImageNet, MedFM's paper split have none).
REQUIRED_SPLITS = ("train", "test")
MANIFEST_FILE = "manifest.parquet"
CLASSES_FILE = "classes.json"


def label_column(task: str) -> str:
    """The manifest column of the targets: `labels` (a 0/1 vector per image) for multi-label data, else `label`."""
    return "labels" if task == "multilabel" else "label"


def schema(task: str) -> dict[str, pl.DataType]:
    target = pl.List(pl.Int8) if task == "multilabel" else pl.Int64
    return {"sample_id": pl.String, "path": pl.String, "split": pl.String, label_column(task): target}


@dataclass(frozen=True, eq=False)
class Dataset:
    """A validated manifest plus what its labels mean. Construction fails with DataError if inconsistent."""

    manifest: pl.DataFrame = field(repr=False)
    task: str
    classes: list[str]
    kind: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", [str(c) for c in self.classes])
        validate(self)

    def split(self, name: str) -> pl.DataFrame:
        return self.manifest.filter(pl.col("split") == name)

    def __repr__(self) -> str:
        counts = {s: self.split(s).height for s in SPLITS}
        return f"Dataset(kind={self.kind!r}, task={self.task!r}, classes={len(self.classes)}, splits={counts})"


def make_dataset(rows: dict[str, list], task: str, classes: list[str], kind: str) -> Dataset:
    """Build a Dataset from column lists (as adapters collect them), casting to the manifest schema."""
    return Dataset(pl.DataFrame(rows, schema=schema(task)), task, classes, kind)


def validate(ds: Dataset) -> None:
    where = f"dataset {ds.kind!r}"
    if ds.task not in TASKS:
        raise DataError(f"{where}: task {ds.task!r} is not one of {', '.join(TASKS)}")
    n = len(ds.classes)
    if n < 2 or (ds.task == "binary" and n != 2):
        raise DataError(f"{where}: {n} classes for task {ds.task!r}; expected {'2' if ds.task == 'binary' else '>= 2'}")
    if len(set(ds.classes)) != n:
        raise DataError(f"{where}: duplicate class names in {ds.classes}")
    expected = schema(ds.task)
    got = dict(ds.manifest.schema)
    if got != expected:
        raise DataError(f"{where}: manifest columns {got} differ from the expected {expected}")
    m = ds.manifest
    if m.null_count().sum_horizontal().item():
        raise DataError(f"{where}: manifest has missing values")
    dup = m.filter(pl.col("sample_id").is_duplicated())["sample_id"]
    if dup.len():
        raise DataError(f"{where}: sample_id {dup[0]!r} occurs more than once ({dup.n_unique()} duplicated ids)")
    relative = m.filter(~pl.col("path").str.starts_with("/"))["path"]  # POSIX absolute paths
    if relative.len():
        raise DataError(f"{where}: path {relative[0]!r} is not absolute")
    bad_split = m.filter(~pl.col("split").is_in(SPLITS))["split"]
    if bad_split.len():
        raise DataError(f"{where}: split {bad_split[0]!r} is not one of {', '.join(SPLITS)}")
    for s in REQUIRED_SPLITS:
        if not m.filter(pl.col("split") == s).height:
            raise DataError(f"{where}: split {s!r} is empty")
    if ds.task == "multilabel":
        lengths = m["labels"].list.len()
        if (lengths != n).any():
            raise DataError(f"{where}: a labels vector has {lengths.filter(lengths != n)[0]} entries; expected {n}")
        if not m["labels"].explode().is_in([0, 1]).all():
            raise DataError(f"{where}: labels must be 0 or 1")
    elif not m["label"].is_between(0, n - 1).all():
        raise DataError(f"{where}: label outside 0..{n - 1}")


def write_dataset(ds: Dataset, out_dir: str | os.PathLike) -> Path:
    """Write ``manifest.parquet`` and ``classes.json`` into out_dir (created if needed); return out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / MANIFEST_FILE, ds.manifest.write_parquet)
    meta = json.dumps({"kind": ds.kind, "task": ds.task, "classes": ds.classes}, indent=2) + "\n"
    atomic_write(out / CLASSES_FILE, lambda p: p.write_text(meta))
    return out


def read_dataset(out_dir: str | os.PathLike) -> Dataset:
    """Read a dataset written by write_dataset; DataError naming the file if it is missing or malformed."""
    out = Path(out_dir)
    meta_path, manifest_path = out / CLASSES_FILE, out / MANIFEST_FILE
    for p in (meta_path, manifest_path):
        if not p.is_file():
            raise DataError(f"{p}: missing; expected a dataset folder with {MANIFEST_FILE} and {CLASSES_FILE}")
    try:
        meta = json.loads(meta_path.read_text())
        kind, task, classes = meta["kind"], meta["task"], list(meta["classes"])
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{meta_path}: cannot read ({e!r}); expected JSON with keys kind, task, classes") from None
    try:
        manifest = pl.read_parquet(manifest_path)
    except Exception as e:  # polars raises several types for a damaged file
        raise DataError(f"{manifest_path}: cannot read parquet ({e})") from None
    try:
        return Dataset(manifest, task, classes, kind)
    except DataError as e:
        raise DataError(f"{out}: {e}") from None
