"""The embedded demo: small, deterministic stand-ins for the real datasets, written in each one's own on-disk
layout so the real adapters read them (nothing is downloaded; scikit-image's bundled images and procedural
painters only, see repdrift.data.synth).

    <out_root>/natural/       ImageFolder train/<class>/*.JPEG, val/<class>/*.JPEG    kind "imagenet"
                              random crops of bundled photos; the class is the photo (pre-training domain and
                              k-NN forgetting bank/queries; class names double as CLIP captions)
    <out_root>/isic2018/      ISIC 2018 Task 3 folders + one-hot GroundTruth CSVs      kind "isic2018"
                              procedural lesions, 7 classes, imbalanced like the real training set
    <out_root>/medfm_colon/   MedFM images/ + list files, names with spaces, binary    kind "medfm_colon"
                              crops of skimage immunohistochemistry(); positives get atypical nuclei + stain
    <out_root>/medfm_chest/   MedFM images/ + list files, 19 comma-separated labels     kind "medfm_chest"
                              greyscale procedural X-rays; each label adds a motif; prevalence 10-30%
    <out_root>/demo.json      the parameters used (also marks a complete demo)

MedFM counts are (train_20, val_20, test_WithLabel, test_WithoutLabel); trainval = train_20 + val_20, and
test_WithoutLabel carries labels as in the full release, so all three MedFM split protocols work on the demo.
Everything is written to a temporary folder and renamed into place, so a half-written demo never looks done.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skdata

from repdrift.data import synth
from repdrift.data.isic2018 import CLASSES as ISIC_CLASSES
from repdrift.data.isic2018 import folders as isic_folders
from repdrift.data.medfm import CHEST_LABELS
from repdrift.errors import ConfigError, DataError

# (class name, scikit-image loader, greyscale?). Only images bundled with scikit-image: no download.
NATURAL = [
    ("astronaut", skdata.astronaut, False),
    ("cat", skdata.chelsea, False),
    ("coffee", skdata.coffee, False),
    ("rocket", skdata.rocket, False),
    ("galaxy", skdata.hubble_deep_field, False),
    ("cameraman", skdata.camera, True),
    ("coins", skdata.coins, True),
    ("moon", skdata.moon, True),
    ("brick", skdata.brick, True),
    ("gravel", skdata.gravel, True),
    ("grass", skdata.grass, True),
    ("horse", skdata.horse, True),
]
# Real ISIC 2018 Task 3 training counts (NV 6705 ... DF 115, in ISIC_CLASSES order), square-root tempered: the
# same ranking and a 8:1 NV:DF imbalance (real 58:1), so the rarest classes still get ~14 of 280 demo images.
ISIC_FREQ = np.sqrt([1113, 6705, 514, 327, 1099, 115, 142]) / np.sqrt([1113, 6705, 514, 327, 1099, 115, 142]).sum()
ISIC_LABEL_NOISE = 0.05  # share of lesions painted as another class: keeps accuracy below 100%
COLON_POSITIVE = 0.4
DEMO_KINDS = {"natural": "imagenet", "isic2018": "isic2018", "medfm_colon": "medfm_colon", "medfm_chest": "medfm_chest"}
MARKER = "demo.json"


def _save(img: np.ndarray, path: Path, **kw) -> None:
    Image.fromarray(np.round(img * 255).astype(np.uint8)).save(path, **kw)


def _allocate(n: int, freq: np.ndarray, minimum: int) -> np.ndarray:
    """Per-class counts summing to n, following freq, with at least `minimum` images per class."""
    counts = np.maximum(minimum, np.floor(freq * n).astype(int))
    counts[np.argmax(freq)] += n - counts.sum()
    if counts.min() < minimum:
        raise ConfigError(f"demo: {n} images cannot give each of {len(freq)} classes {minimum}")
    return counts


def _natural(out: Path, rng: np.random.Generator, size: int, n_classes: int, n_train: int, n_val: int) -> None:
    if not 2 <= n_classes <= len(NATURAL):
        raise ConfigError(f"demo: natural_classes={n_classes}; expected 2..{len(NATURAL)}")
    for name, load, grey in NATURAL[:n_classes]:
        photo = Image.fromarray(np.asarray(load()).astype(np.uint8) * (255 if name == "horse" else 1))
        photo = photo.convert("RGB")
        scale = 160 / min(photo.size)  # crops of 20-60% of 160 px then cover 32-96 px
        source = np.asarray(photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.LANCZOS))
        for split, count, stem in (("train", n_train, name), ("val", n_val, "val")):
            folder = out / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                _save(synth.natural_crop(rng, source, size, grey), folder / f"{stem}_{i:05d}.JPEG", quality=90)


def _isic(out: Path, rng: np.random.Generator, size: int, counts: tuple[int, int, int]) -> None:
    next_id = 24306
    for part, n in zip(("Training", "Validation", "Test"), counts, strict=True):
        images, csv = isic_folders(out, part)
        images.mkdir(parents=True)
        csv.parent.mkdir(parents=True)
        (images / "LICENSE.txt").write_text("Synthetic demo images generated by repdrift (public domain).\n")
        (images / "ATTRIBUTION.txt").write_text("repdrift demo: procedural lesions, not ISIC data.\n")
        labels = np.repeat(np.arange(len(ISIC_CLASSES)), _allocate(n, ISIC_FREQ, 2))
        rng.shuffle(labels)
        lines = ["image," + ",".join(ISIC_CLASSES)]
        for label in labels:
            painted = rng.integers(len(ISIC_CLASSES)) if rng.random() < ISIC_LABEL_NOISE else label
            image_id = f"ISIC_{next_id:07d}"
            next_id += 1
            _save(synth.skin_lesion(rng, ISIC_CLASSES[painted], size), images / f"{image_id}.jpg", quality=92)
            lines.append(image_id + "," + ",".join("1.0" if c == label else "0.0" for c in range(len(ISIC_CLASSES))))
        csv.write_text("\n".join(lines) + "\n")


def _medfm(
    out: Path,
    counts: tuple[int, int, int, int],
    names: list[str],
    labels: list[np.ndarray],
    paint: Callable[[int], np.ndarray],
    fmt: Callable[[np.ndarray], str],
) -> None:
    """Write images/ and the five list files; rows are ordered train_20, val_20, test_WithLabel, test_WithoutLabel."""
    (out / "images").mkdir(parents=True)
    for i, name in enumerate(names):
        _save(paint(i), out / "images" / name)
    lines = [f"{name} {fmt(y)}" for name, y in zip(names, labels, strict=True)]
    bounds = np.cumsum([0, *counts])
    parts = dict(
        zip(
            ("train_20", "val_20", "test_WithLabel", "test_WithoutLabel"),
            (lines[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)),
            strict=True,
        )
    )
    parts["trainval"] = sorted(parts["train_20"] + parts["val_20"])
    for stem, part in parts.items():
        (out / f"{stem}.txt").write_text("\n".join(part) + "\n")


def _colon(out: Path, rng: np.random.Generator, size: int, counts: tuple[int, int, int, int]) -> None:
    tissue = np.asarray(Image.fromarray(skdata.immunohistochemistry()).resize((256, 256), Image.LANCZOS))
    labels = []
    for n in counts:
        y = np.zeros(n, int)
        y[: round(COLON_POSITIVE * n)] = 1
        labels += list(rng.permutation(y))
    # Real colon names carry a slide id, a timestamp and crop coordinates separated by spaces.
    names = [
        f"{1803000 + i}-1 2022-05-{1 + i % 28:02d} 12_{i // 60 % 60:02d}_{i % 60:02d}-lv1-{i * 37 % 9973}.png"
        for i in range(sum(counts))
    ]
    _medfm(out, counts, names, labels, lambda i: synth.colon_patch(rng, tissue, size, bool(labels[i])), str)


def _chest(out: Path, rng: np.random.Generator, size: int, counts: tuple[int, int, int, int]) -> None:
    k = len(CHEST_LABELS)
    prevalence = rng.uniform(0.1, 0.3, k)
    blocks = []
    for n in counts:
        y = (rng.random((n, k)) < prevalence).astype(np.int8)
        for j in range(k):  # every label needs >= 2 positives in every list (mAP/AUC are undefined otherwise)
            missing = 2 - y[:, j].sum()
            if missing > 0:
                y[rng.choice(np.flatnonzero(y[:, j] == 0), missing, replace=False), j] = 1
        blocks.append(y)
    labels = list(np.concatenate(blocks))
    names = [f"chest_{i:05d}.png" for i in range(sum(counts))]
    _medfm(
        out,
        counts,
        names,
        labels,
        lambda i: synth.chest_xray(rng, labels[i], size),
        lambda y: ",".join(str(int(v)) for v in y),
    )


def make_demo_data(
    out_root: str | os.PathLike,
    *,
    size: int = 32,
    natural_classes: int = 10,
    natural_train: int = 100,
    natural_val: int = 20,
    isic: tuple[int, int, int] = (280, 70, 140),
    colon: tuple[int, int, int, int] = (200, 60, 100, 100),
    chest: tuple[int, int, int, int] = (200, 60, 100, 100),
    seed: int = 0,
) -> dict[str, Path]:
    """Generate the demo under out_root (replacing an earlier demo there) and return {name: dataset root}.

    Deterministic given the arguments: each dataset draws from its own generator seeded by (seed, dataset).
    """
    out = Path(os.path.abspath(out_root))
    if out.exists() and not (out / MARKER).is_file():
        raise DataError(f"{out}: exists and is not a repdrift demo (no {MARKER}); refusing to replace it")
    if size < 8 or size % 2:
        raise ConfigError(f"demo: size={size}; expected an even number of pixels >= 8")
    params = dict(
        size=size,
        natural_classes=natural_classes,
        natural_train=natural_train,
        natural_val=natural_val,
        isic=list(isic),
        colon=list(colon),
        chest=list(chest),
        seed=seed,
    )
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        rng = {name: np.random.default_rng([seed, i]) for i, name in enumerate(DEMO_KINDS)}
        _natural(tmp / "natural", rng["natural"], size, natural_classes, natural_train, natural_val)
        _isic(tmp / "isic2018", rng["isic2018"], size, tuple(isic))
        _colon(tmp / "medfm_colon", rng["medfm_colon"], size, tuple(colon))
        _chest(tmp / "medfm_chest", rng["medfm_chest"], size, tuple(chest))
        (tmp / MARKER).write_text(json.dumps({"params": params, "kinds": DEMO_KINDS}, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {name: out / name for name in DEMO_KINDS}
