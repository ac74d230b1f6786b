"""ISIC 2018 Task 3 (skin lesions, 7 classes) in its official layout, splits as published.

    <root>/ISIC2018_Task3_Training_Input/ISIC_0024306.jpg ...          (also ATTRIBUTION.txt, LICENSE.txt)
    <root>/ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv
    ... the same for Validation and Test

Ground-truth CSVs: header ``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC``, one-hot floats (``ISIC_0024306,0.0,1.0,...``),
ids without ``.jpg``. Columns are read by name, so extra ones (``score_weight``, ...) are ignored.
Splits: Training -> train (10,015), Validation -> val (193), Test -> test (1,512).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from repdrift.data.files import check_images_exist, read_csv, require_dir
from repdrift.data.manifest import Dataset, make_dataset
from repdrift.errors import DataError

CLASSES = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
PARTS = {"train": "Training", "val": "Validation", "test": "Test"}
CSV_LAYOUT = "a CSV with header image," + ",".join(CLASSES) + " and one-hot rows like ISIC_0024306,0.0,1.0,..."


def folders(root: Path, part: str) -> tuple[Path, Path]:
    """(image folder, ground-truth CSV) of one official part: Training, Validation or Test."""
    stem = f"ISIC2018_Task3_{part}"
    return root / f"{stem}_Input", root / f"{stem}_GroundTruth" / f"{stem}_GroundTruth.csv"


def _read_part(root: Path, part: str) -> tuple[list[str], list[int], Path]:
    images, csv = folders(root, part)
    require_dir(images, f"the official ISIC 2018 Task 3 folder {images.name}/ with ISIC_*.jpg images")
    df = read_csv(csv, ["image", *CLASSES], CSV_LAYOUT)
    try:
        onehot = df.select(pl.col(CLASSES).str.strip_chars().cast(pl.Float64, strict=True)).to_numpy()
    except pl.exceptions.InvalidOperationError:
        raise DataError(f"{csv}: non-numeric value in a class column; expected {CSV_LAYOUT}") from None
    rows_ok = ((onehot == 0) | (onehot == 1)).all(axis=1) & (onehot.sum(axis=1) == 1)
    if not rows_ok.all():
        bad = int((~rows_ok).argmax())
        raise DataError(f"{csv}: row for {df['image'][bad]!r} is not one-hot over {','.join(CLASSES)}")
    ids = df["image"].str.strip_chars().to_list()
    if len(set(ids)) != len(ids):
        dup = df.filter(pl.col("image").is_duplicated())["image"][0]
        raise DataError(f"{csv}: image {dup!r} is listed more than once; expected {CSV_LAYOUT}")
    check_images_exist(images, [f"{i}.jpg" for i in ids], csv)
    return ids, onehot.argmax(axis=1).tolist(), images


def build(root: Path) -> Dataset:
    rows: dict[str, list] = {"sample_id": [], "path": [], "split": [], "label": []}
    for split, part in PARTS.items():
        ids, labels, images = _read_part(root, part)
        rows["sample_id"] += ids
        rows["path"] += [str(images / f"{i}.jpg") for i in ids]
        rows["split"] += [split] * len(ids)
        rows["label"] += labels
    return make_dataset(rows, "multiclass", CLASSES, "isic2018")
