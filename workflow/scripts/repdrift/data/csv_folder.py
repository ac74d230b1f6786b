"""A generic labelled image list: one CSV with an image path and a class label per row.

``root`` is the CSV file itself or a folder holding it (option ``csv``, default ``labels.csv``). Options:
``path_column`` ("path"), ``label_column`` ("label"), ``split_column`` ("split": used when the CSV has it, with
values train | val | test), ``image_root`` (relative paths are resolved against it; default the CSV's folder),
``classes`` (class names in index order; default the sorted distinct labels, numerically if all are integers;
a label may be a class name or an integer index into ``classes``), ``task`` (default "binary" for two classes,
else "multiclass"), and, without a split column, a seeded stratified split (``fractions`` (0.8, 0.1, 0.1),
``seed`` 0; see repdrift.data.splits). sample_id is the path as written in the CSV.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import polars as pl

from repdrift.data.files import check_images_exist, read_csv, require_file
from repdrift.data.manifest import SPLITS, Dataset, make_dataset
from repdrift.data.splits import stratified_split
from repdrift.errors import ConfigError, DataError


def _default_classes(values: list[str]) -> list[str]:
    distinct = set(values)
    if all(v.lstrip("-").isdigit() for v in distinct):
        return sorted(distinct, key=int)
    return sorted(distinct)


def _label_index(values: list[str], classes: list[str], csv: Path, column: str) -> list[int]:
    index = {c: i for i, c in enumerate(classes)}
    out = []
    for row, v in enumerate(values, 1):
        if v in index:
            out.append(index[v])
        elif v.isdigit() and int(v) < len(classes):
            out.append(int(v))
        else:
            raise DataError(
                f"{csv}: unknown label {v!r} in column {column!r} (data row {row}); "
                f"expected one of {classes} or an index 0..{len(classes) - 1}"
            )
    return out


def build(
    root: Path,
    *,
    csv: str = "labels.csv",
    path_column: str = "path",
    label_column: str = "label",
    split_column: str = "split",
    image_root: str | Path | None = None,
    classes: list[str] | None = None,
    task: str | None = None,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> Dataset:
    csv_path = root if root.is_file() else root / csv
    layout = f"a CSV with columns {path_column},{label_column}[,{split_column}] (one image per row)"
    require_file(csv_path, layout)
    df = read_csv(csv_path, [path_column, label_column], layout)
    paths = df[path_column].to_list()
    if len(set(paths)) != len(paths):
        dup = df.filter(pl.col(path_column).is_duplicated())[path_column][0]
        raise DataError(f"{csv_path}: image {dup!r} is listed more than once; expected {layout}")
    values = df[label_column].str.strip_chars().to_list()
    names = [str(c) for c in classes] if classes is not None else _default_classes(values)
    labels = _label_index(values, names, csv_path, label_column)
    task = task or ("binary" if len(names) == 2 else "multiclass")
    if task not in ("binary", "multiclass"):
        raise ConfigError(f"csv: task {task!r}; expected binary or multiclass")

    base = Path(image_root) if image_root is not None else csv_path.parent
    full = [os.path.abspath(base / p) for p in paths]
    by_folder: dict[str, list[str]] = defaultdict(list)
    for p in full:
        by_folder[os.path.dirname(p)].append(os.path.basename(p))
    for folder, files in by_folder.items():
        if not os.path.isdir(folder):
            raise DataError(f"{csv_path}: lists images in {folder}, which is not a folder; expected {layout}")
        check_images_exist(Path(folder), files, csv_path)

    if split_column in df.columns:
        splits = df[split_column].str.strip_chars().to_list()
        bad = [s for s in splits if s not in SPLITS]
        if bad:
            raise DataError(f"{csv_path}: split {bad[0]!r} in column {split_column!r}; expected train, val or test")
    else:
        order = sorted(range(len(paths)), key=paths.__getitem__)  # independent of row order
        by_order = stratified_split([labels[i] for i in order], fractions, seed)
        splits = [""] * len(paths)
        for i, s in zip(order, by_order, strict=True):
            splits[i] = s
    for s in ("train", "test"):
        if s not in splits:
            raise DataError(f"{csv_path}: no {s} images; expected {layout}")
    rows = {"sample_id": paths, "path": full, "split": splits, "label": labels}
    return make_dataset(rows, task, names, "csv")
