"""MedFM 2023 (MedFMC) chest, colon and endo in their released layout.

    <root>/images/<name>
    <root>/{trainval,train_20,val_20,test_WithLabel,test_WithoutLabel}.txt

List lines: chest ``name.png 0,1,0,...`` (19 labels, comma-separated after one space); endo ``name.png 0 0 1 0``
(4 labels, space-separated); colon ``name.png 1`` where names contain spaces (the name is everything up to the
image extension). ``test_WithoutLabel.txt`` holds names only in the public release; the full release adds labels.
trainval = train_20 + val_20.

``split`` chooses the protocol (default ``"official"``; there is no silent fallback between them):
- ``"official"``: train = train_20, val = val_20, test = test_WithLabel. Disjoint; public labels only.
- ``"disjoint"``: train = train_20 + test_WithLabel, val = val_20, test = test_WithoutLabel. train + val is the
  paper's training set (trainval + test_WithLabel) and the test set shares no image with it; needs the full
  release's labels in test_WithoutLabel.txt.
- ``"paper"``: Zu et al.'s counts: train = trainval + test_WithLabel, no val, test = test_WithLabel +
  test_WithoutLabel. test_WithLabel is in both (a train/test leak the paper has); its test rows get sample_id
  ``<name>@test`` so ids stay unique. Needs test_WithoutLabel labels.
A list whose labels the chosen split needs but lacks fails with a DataError naming that file.
"""

from __future__ import annotations

import re
from pathlib import Path

from repdrift.data.files import check_images_exist, require_dir, require_file
from repdrift.data.manifest import Dataset, label_column, make_dataset
from repdrift.errors import ConfigError, DataError

# Label j of a chest list line; the demo's painter (repdrift.data.synth) paints the same names.
CHEST_LABELS = [
    "pleural_effusion",
    "nodule",
    "pneumonia",
    "cardiomegaly",
    "hilar_enlargement",
    "fracture_old",
    "fibrosis",
    "aortic_calcification",
    "tortuous_aorta",
    "thickened_pleura",
    "TB",
    "pneumothorax",
    "emphysema",
    "atelectasis",
    "calcification",
    "pulmonary_edema",
    "increased_lung_markings",
    "elevated_diaphragm",
    "consolidation",
]
SPECS = {
    "medfm_chest": ("multilabel", ",", CHEST_LABELS),
    "medfm_endo": ("multilabel", " ", ["ulcer", "erosion", "polyp", "tumor"]),
    "medfm_colon": ("binary", None, ["negative", "positive"]),
}
# (split, list file) per protocol, in manifest order. Every list used must carry labels.
PROTOCOLS = {
    "official": [("train", "train_20"), ("val", "val_20"), ("test", "test_WithLabel")],
    "disjoint": [("train", "train_20"), ("train", "test_WithLabel"), ("val", "val_20"), ("test", "test_WithoutLabel")],
    "paper": [
        ("train", "trainval"),
        ("train", "test_WithLabel"),
        ("test", "test_WithLabel"),
        ("test", "test_WithoutLabel"),
    ],
}
# The name runs to the last image extension followed by whitespace or the line end (colon names have spaces).
LINE = re.compile(r"^(?P<name>.+\.(?:png|jpe?g|bmp|tiff?))(?:\s+(?P<labels>\S.*?))?\s*$", re.IGNORECASE)


def _layout(kind: str, n: int) -> str:
    sep = SPECS[kind][1]
    example = "1" if sep is None else sep.join(["0"] * n)
    return f"lines '<name>.png {example}' ({n} label(s) of 0/1)"


def read_list(path: Path, kind: str, n_labels: int) -> list[tuple[str, list[int] | None]]:
    """Parse one list file into (name, labels or None when the line has only a name)."""
    require_file(path, f"a MedFM list file with {_layout(kind, n_labels)}")
    entries = []
    for no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        m = LINE.match(line.strip())
        if not m:
            raise DataError(f"{path}: line {no} {line!r} has no image name; expected {_layout(kind, n_labels)}")
        text = m["labels"]
        labels = None if text is None else re.split(r"[,\s]+", text.strip())
        if labels is not None and (len(labels) != n_labels or any(v not in ("0", "1") for v in labels)):
            raise DataError(
                f"{path}: line {no} has {len(labels)} label value(s) {text!r}; expected {_layout(kind, n_labels)}"
            )
        entries.append((m["name"], None if labels is None else [int(v) for v in labels]))
    if not entries:
        raise DataError(f"{path}: empty list; expected {_layout(kind, n_labels)}")
    return entries


def build(root: Path, kind: str, *, split: str = "official", classes: list[str] | None = None) -> Dataset:
    task, _, default_classes = SPECS[kind]
    if split not in PROTOCOLS:
        raise ConfigError(f"{kind}: split {split!r} is not one of {', '.join(PROTOCOLS)}")
    names = list(classes) if classes is not None else default_classes
    n_labels = len(default_classes) if task == "multilabel" else 1
    if classes is not None and len(names) != len(default_classes):
        raise ConfigError(f"{kind}: {len(names)} class names given; the list files carry {len(default_classes)}")
    images = require_dir(root / "images", "a MedFM dataset folder with images/ and the list files")
    label_col = label_column(task)
    rows: dict[str, list] = {"sample_id": [], "path": [], "split": [], label_col: []}
    listed_in: dict[str, Path] = {}  # sample_id -> list file, to name both files of an overlap
    for split_name, stem in PROTOCOLS[split]:
        path = root / f"{stem}.txt"
        entries = read_list(path, kind, n_labels)
        unlabelled = [name for name, labels in entries if labels is None]
        if unlabelled:
            raise DataError(
                f"{path}: {len(unlabelled)} line(s) without labels, e.g. {unlabelled[0]!r}; split={split!r} "
                f"needs {_layout(kind, n_labels)} (the full release), or use split='official'"
            )
        check_images_exist(images, [name for name, _ in entries], path)
        for name, labels in entries:
            # The paper's protocol puts test_WithLabel in train and test on purpose; elsewhere it is an error.
            sample_id = f"{name}@test" if split == "paper" and split_name == "test" and name in listed_in else name
            if sample_id in listed_in:
                raise DataError(
                    f"{path}: {name!r} is also listed in {listed_in[sample_id]}; split={split!r} expects disjoint lists"
                )
            listed_in[sample_id] = path
            rows["sample_id"].append(sample_id)
            rows["path"].append(str(images / name))
            rows["split"].append(split_name)
            rows[label_col].append(labels if task == "multilabel" else labels[0])
    return make_dataset(rows, task, names, kind)
