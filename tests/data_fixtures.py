"""Builders of tiny datasets in the real on-disk formats (see /work/shared/REFERENCE-FACTS.md), for tmp_path.

Images are 8x8 solid colours: the adapters only check existence; tests that decode images say so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

ISIC_CLASSES = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
MEDFM = {  # kind: (number of labels, separator)
    "medfm_chest": (19, ","),
    "medfm_endo": (4, " "),
    "medfm_colon": (1, None),
}


def image(path: Path, value: int = 128, size: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)
    return path


def isic(root: Path, labels: dict[str, list[int]] | None = None, extra_columns: bool = False) -> Path:
    """ISIC 2018 Task 3 layout; labels maps Training/Validation/Test to class indices (default: each class once)."""
    labels = labels or {part: list(range(7)) for part in ("Training", "Validation", "Test")}
    next_id = 24306
    for part, ys in labels.items():
        stem = f"ISIC2018_Task3_{part}"
        images = root / f"{stem}_Input"
        images.mkdir(parents=True)
        (images / "LICENSE.txt").write_text("license\n")
        (images / "ATTRIBUTION.txt").write_text("attribution\n")
        header = "image," + ",".join(ISIC_CLASSES) + (",score_weight,validation_weight" if extra_columns else "")
        lines = [header]
        for y in ys:
            image_id = f"ISIC_{next_id:07d}"
            next_id += 1
            image(images / f"{image_id}.jpg", 20 * y)
            onehot = ",".join("1.0" if c == y else "0.0" for c in range(7))
            lines.append(f"{image_id},{onehot}" + (",1.0,0.5" if extra_columns else ""))
        gt = root / f"{stem}_GroundTruth" / f"{stem}_GroundTruth.csv"
        gt.parent.mkdir(parents=True)
        gt.write_text("\n".join(lines) + "\n")
    return root


def aptos(root: Path, per_grade: tuple[int, ...] = (20, 10, 10, 5, 5)) -> Path:
    lines = ["id_code,diagnosis"]
    for grade, n in enumerate(per_grade):
        for i in range(n):
            code = f"{grade:x}{i:03d}c0ffee{i:02x}"
            image(root / "train_images" / f"{code}.png", 40 * grade)
            lines.append(f"{code},{grade}")
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    (root / "test.csv").write_text("id_code\nfeedbeef0000\n")
    return root


def medfm_line(kind: str, name: str, labels: list[int] | None) -> str:
    if labels is None:
        return name
    sep = MEDFM[kind][1]
    return f"{name} {sep.join(map(str, labels)) if sep else labels[0]}"


def medfm(root: Path, kind: str, counts=(6, 3, 4, 5), unlabelled_test: bool = True, seed: int = 0) -> Path:
    """MedFM layout with (train_20, val_20, test_WithLabel, test_WithoutLabel) counts; trainval = train + val.

    test_WithoutLabel.txt holds names only (public release) unless unlabelled_test is False (full release).
    """
    rng = np.random.default_rng(seed)
    n_labels = MEDFM[kind][0]
    stems = ("train_20", "val_20", "test_WithLabel", "test_WithoutLabel")
    lists: dict[str, list[str]] = {}
    i = 0
    for stem, n in zip(stems, counts, strict=True):
        lines = []
        for j in range(n):
            # colon names carry spaces, like the real ones
            colon_name = f"18030{i:02d}-1 2022-05-17 12_00_{i:02d}-lv1-{j}.png"
            name = colon_name if kind == "medfm_colon" else f"img_{i:04d}.png"
            i += 1
            image(root / "images" / name, 10 * (i % 20))
            # every label positive at least once per list: alternate a 1 through the label positions
            labels = [int(k == j % n_labels or rng.random() < 0.2) for k in range(n_labels)]
            if kind == "medfm_colon":
                labels = [j % 2]
            lines.append(medfm_line(kind, name, None if stem == "test_WithoutLabel" and unlabelled_test else labels))
        lists[stem] = lines
    lists["trainval"] = lists["train_20"] + lists["val_20"]
    for stem, lines in lists.items():
        (root / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    return root


def imagenet(root: Path, classes=("n01440764", "n01443537", "n01484850"), n_train: int = 6, n_val: int = 3) -> Path:
    for c, wnid in enumerate(classes):
        for i in range(n_train):
            image(root / "train" / wnid / f"{wnid}_{i}.JPEG", 50 * c)
        for i in range(n_val):
            image(root / "val" / wnid / f"ILSVRC2012_val_{c * 100 + i:08d}.JPEG", 50 * c)
    return root


def labelled_csv(root: Path, classes=("cat", "dog", "owl"), per_class: int = 10, split: bool = False) -> Path:
    lines = ["path,label" + (",split" if split else "")]
    for c, name in enumerate(classes):
        for i in range(per_class):
            rel = f"imgs/{name}/{i}.png"
            image(root / rel, 60 * c)
            s = ("train", "train", "val", "test")[i % 4] if split else None
            lines.append(f"{rel},{name}" + (f",{s}" if split else ""))
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root
