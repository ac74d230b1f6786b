"""ImageNet-style ImageFolder (the k-NN forgetting check): ``train/<class>/*`` and ``val/<class>/*``.

Classes are the sorted folder names of ``train/`` (wnids for ImageNet-1k; the demo uses readable names); any
image extension counts (``.JPEG``, ``.jpg``, ``.png``, ...). Splits: train = the k-NN bank, test = the queries
(``val/``); there is no val split. ``bank_per_class`` / ``val_per_class`` (default None = all) keep a fixed
class-balanced random subset, reproducible from ``seed`` (files sorted by name first; a class with fewer images
keeps all of them). sample_id is the path relative to root, e.g. ``train/n01440764/n01440764_10026.JPEG``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from repdrift.data.files import list_images, require_dir
from repdrift.data.manifest import Dataset, make_dataset
from repdrift.errors import ConfigError, DataError

LAYOUT = "an ImageFolder with train/<class>/*.JPEG and val/<class>/*.JPEG"


def _subset(files: list[str], k: int | None, rng: np.random.Generator) -> list[str]:
    if k is None or k >= len(files):
        return files
    return [files[i] for i in sorted(rng.choice(len(files), size=k, replace=False))]


def build(root: Path, *, bank_per_class: int | None = None, val_per_class: int | None = None, seed: int = 0) -> Dataset:
    for name, k in (("bank_per_class", bank_per_class), ("val_per_class", val_per_class)):
        if k is not None and (not isinstance(k, int) or k < 1):
            raise ConfigError(f"imagenet: {name}={k!r}; expected a positive integer or None")
    train = require_dir(root / "train", LAYOUT)
    val = require_dir(root / "val", LAYOUT)
    classes = sorted(e.name for e in os.scandir(train) if e.is_dir())
    if not classes:
        raise DataError(f"{train}: no class folders; expected {LAYOUT}")
    unknown = sorted(set(e.name for e in os.scandir(val) if e.is_dir()) - set(classes))
    if unknown:
        raise DataError(f"{val / unknown[0]}: class folder not in {train}; expected the same classes as train/")
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {"sample_id": [], "path": [], "split": [], "label": []}
    for split, folder, k in (("train", train, bank_per_class), ("test", val, val_per_class)):
        for label, cls in enumerate(classes):
            d = folder / cls
            files = list_images(d) if d.is_dir() else []
            if not files and split == "train":
                raise DataError(f"{d}: no images; expected {LAYOUT}")
            for f in _subset(files, k, rng):
                rows["sample_id"].append(f"{folder.name}/{cls}/{f}")
                rows["path"].append(str(d / f))
                rows["split"].append(split)
                rows["label"].append(label)
    if "test" not in rows["split"]:
        raise DataError(f"{val}: no images; expected {LAYOUT}")
    return make_dataset(rows, "multiclass", classes, "imagenet")
