"""Filesystem and CSV checks shared by the adapters: each failure is one DataError naming the path and the
expected layout. Image existence is checked by listing each folder once (fast on 10^5-10^6 files), never by
opening images."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import polars as pl

from repdrift.errors import DataError

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def require_dir(path: Path, expected: str) -> Path:
    if not path.is_dir():
        raise DataError(f"{path}: folder not found; expected {expected}")
    return path


def require_file(path: Path, expected: str) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: file not found; expected {expected}")
    return path


def is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def list_images(folder: Path) -> list[str]:
    """Sorted image file names directly inside folder (non-image files such as LICENSE.txt are skipped)."""
    return sorted(e.name for e in os.scandir(folder) if e.is_file() and is_image(e.name))


def check_images_exist(folder: Path, names: Iterable[str], listed_in: Path) -> None:
    """Every name must be a file in folder; the error names the list that mentions a missing one."""
    present = {e.name for e in os.scandir(folder) if e.is_file()}
    missing = [n for n in names if n not in present]
    if missing:
        raise DataError(f"{listed_in}: lists {len(missing)} image(s) not found in {folder}, e.g. {missing[0]!r}")


def read_csv(path: Path, columns: Iterable[str], expected: str) -> pl.DataFrame:
    """Read a CSV with every column as text; fail if it is unreadable, empty or lacks a required column."""
    require_file(path, expected)
    try:
        df = pl.read_csv(path, infer_schema=False)
    except Exception as e:  # polars raises NoDataError, ComputeError, ... for malformed files
        raise DataError(f"{path}: cannot read CSV ({str(e).splitlines()[0]}); expected {expected}") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; expected {expected}")
    if df.height == 0:
        raise DataError(f"{path}: no rows; expected {expected}")
    nulls = [c for c in columns if df[c].null_count()]
    if nulls:
        row = df.with_row_index().filter(pl.col(nulls[0]).is_null())["index"][0]
        raise DataError(f"{path}: empty value in column {nulls[0]!r} (data row {row + 1}); expected {expected}")
    return df
