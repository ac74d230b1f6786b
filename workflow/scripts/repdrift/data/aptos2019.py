"""APTOS 2019 blindness detection (diabetic retinopathy grades 0-4) with a fixed, published split.

    <root>/train.csv                    id_code,diagnosis      (3,662 rows; test.csv has no labels, unused)
    <root>/train_images/<id_code>.png

No official split exists, so a seeded stratified 80/10/10 split of train.csv is made (``seed``, default 0;
rows sorted by id_code first, per-class shares by largest remainder: 3,662 -> 2,930 / 366 / 366, the paper's
counts). ``split_file`` (a CSV ``id_code,split``) pins it: if the file exists it is read (and must cover every
id_code with train | val | test; ``seed`` is then ignored), otherwise the split is made and written there so it
can be published with the results.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from repdrift.data.files import check_images_exist, read_csv, require_dir
from repdrift.data.manifest import SPLITS, Dataset, make_dataset
from repdrift.data.splits import stratified_split
from repdrift.errors import DataError
from repdrift.formats.atomic import atomic_write

CLASSES = ["No DR", "Mild", "Moderate", "Severe", "Proliferative DR"]
TRAIN_LAYOUT = "APTOS 2019 train.csv with header id_code,diagnosis and grades 0-4"
SPLIT_LAYOUT = "a CSV with header id_code,split listing every id_code of train.csv with train, val or test"


def _read_split_file(path: Path, ids: list[str]) -> dict[str, str]:
    df = read_csv(path, ["id_code", "split"], SPLIT_LAYOUT)
    dup = df.filter(pl.col("id_code").is_duplicated())["id_code"]
    if dup.len():
        raise DataError(f"{path}: id_code {dup[0]!r} listed more than once; expected {SPLIT_LAYOUT}")
    split = dict(zip(df["id_code"].to_list(), df["split"].to_list(), strict=True))
    bad = [s for s in split.values() if s not in SPLITS]
    if bad:
        raise DataError(f"{path}: split {bad[0]!r} is not one of train, val, test")
    missing = [i for i in ids if i not in split]
    if missing:
        raise DataError(f"{path}: has no split for {len(missing)} id_code(s) of train.csv, e.g. {missing[0]!r}")
    return split


def build(root: Path, *, seed: int = 0, split_file: str | Path | None = None) -> Dataset:
    images = require_dir(root / "train_images", "APTOS 2019 train_images/ with <id_code>.png files")
    csv = root / "train.csv"
    df = read_csv(csv, ["id_code", "diagnosis"], TRAIN_LAYOUT).sort("id_code")
    ids = df["id_code"].to_list()
    if len(set(ids)) != len(ids):
        raise DataError(f"{csv}: id_code {df.filter(pl.col('id_code').is_duplicated())['id_code'][0]!r} repeats")
    grades = df["diagnosis"].str.strip_chars()
    bad = df.filter(~grades.is_in([str(g) for g in range(len(CLASSES))]))
    if bad.height:
        raise DataError(f"{csv}: diagnosis {bad['diagnosis'][0]!r} for {bad['id_code'][0]!r}; expected 0-4")
    labels = grades.cast(pl.Int64).to_list()
    check_images_exist(images, [f"{i}.png" for i in ids], csv)

    if split_file is not None and Path(split_file).exists():
        split = _read_split_file(Path(split_file), ids)
        splits = [split[i] for i in ids]
    else:
        splits = stratified_split(labels, (0.8, 0.1, 0.1), seed)
        if split_file is not None:
            out = pl.DataFrame({"id_code": ids, "split": splits})
            Path(split_file).parent.mkdir(parents=True, exist_ok=True)
            atomic_write(Path(split_file), out.write_csv)
    rows = {"sample_id": ids, "path": [str(images / f"{i}.png") for i in ids], "split": splits, "label": labels}
    return make_dataset(rows, "multiclass", CLASSES, "aptos2019")
