"""A torch Dataset over a manifest: ``(image_tensor, target, index)`` per row.

The only module of repdrift.data that imports torch. target is a long class index (multiclass, binary) or a
float 0/1 vector (multilabel, for BCE). index is the row in the manifest given, so outputs can be matched back to
sample_id. Rows are copied into plain lists, so DataLoader workers pickle cheaply.

`keep` holds images in memory across epochs when the loader runs in this process (no workers: on CPU), up to
KEEP_BYTES: `"decoded"` keeps the decoded image (a random augmentation still runs every time), `"transformed"` the
transformed tensor (for a deterministic transform). Either returns exactly what loading again would.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl
import torch
from torch.utils.data import Dataset as TorchDataset

from repdrift.data.images import load_image
from repdrift.data.manifest import label_column
from repdrift.errors import DataError

KEEP_BYTES = 256 * 2**20


class ManifestImages(TorchDataset):
    def __init__(
        self, manifest: pl.DataFrame, transform: Callable, task: str, num_classes: int, keep: str | None = None
    ):
        if keep not in (None, "decoded", "transformed"):
            raise ValueError(f"keep must be None, 'decoded' or 'transformed', got {keep!r}")
        self.paths = manifest["path"].to_list()
        self.transform = transform
        self.keep, self._kept, self._kept_bytes = keep, {}, 0
        self.multilabel = task == "multilabel"
        column = label_column(task)
        if column not in manifest.columns:
            raise DataError(f"manifest has no {column!r} column for task {task!r}")
        if self.multilabel:
            lengths = manifest["labels"].list.len().unique().to_list()
            if lengths and lengths != [num_classes]:
                raise DataError(f"manifest labels vectors have length {lengths}; expected {num_classes}")
            self.targets = torch.tensor(manifest["labels"].to_list(), dtype=torch.float32).reshape(-1, num_classes)
        else:
            self.targets = torch.tensor(manifest["label"].to_list(), dtype=torch.long)
            if len(self.targets) and not (int(self.targets.min()) >= 0 and int(self.targets.max()) < num_classes):
                raise DataError(f"manifest labels fall outside 0..{num_classes - 1}")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        if self.keep == "transformed" and index in self._kept:
            return self._kept[index], self.targets[index], index
        image = self._kept.get(index) if self.keep == "decoded" else None
        if image is None:
            image = load_image(self.paths[index])
            if self.keep == "decoded":
                self._hold(index, image, image.width * image.height * len(image.getbands()))
        tensor = self.transform(image)
        if self.keep == "transformed":
            self._hold(index, tensor, tensor.numel() * tensor.element_size())
        return tensor, self.targets[index], index

    def _hold(self, index: int, item, size: int) -> None:
        if self._kept_bytes + size <= KEEP_BYTES:
            self._kept[index] = item
            self._kept_bytes += size


def loader_workers() -> int:
    """DataLoader workers for this job: on a GPU, one per CPU the job was given but the one feeding the GPU
    (the rule's threads, i.e. Slurm's --cpus-per-task); on CPU none, as workers would compete with the model."""
    return max(1, torch.get_num_threads() - 1) if torch.cuda.is_available() else 0
