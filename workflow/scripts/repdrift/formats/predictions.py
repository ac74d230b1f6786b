"""Test-set predictions of a fine-tuned model: class probabilities, targets and sample ids (HDF5, no torch)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from repdrift.errors import DataError
from repdrift.formats.atomic import atomic_path


@dataclass(frozen=True)
class Predictions:
    """`probs` (n, C): softmax for multiclass/binary, per-class sigmoid for multilabel; `targets` (n,) or (n, C)."""

    probs: np.ndarray
    targets: np.ndarray
    sample_id: np.ndarray
    task: str
    classes: list[str]


def write_predictions(path: str | Path, predictions: Predictions) -> None:
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs["task"] = predictions.task
        h5.attrs["classes"] = list(predictions.classes)
        h5.create_dataset("probs", data=np.asarray(predictions.probs, dtype="float64"))
        h5.create_dataset("targets", data=np.asarray(predictions.targets))
        h5.create_dataset("sample_id", data=np.asarray(predictions.sample_id, dtype=object), dtype=h5py.string_dtype())


def read_predictions(path: str | Path) -> Predictions:
    try:
        with h5py.File(path, "r") as h5:
            return Predictions(
                probs=h5["probs"][()],
                targets=h5["targets"][()],
                sample_id=h5["sample_id"].asstr()[()],
                task=str(h5.attrs["task"]),
                classes=[str(c) for c in h5.attrs["classes"]],
            )
    except (OSError, KeyError) as err:
        raise DataError(f"{path}: not a readable predictions file ({err})") from None
