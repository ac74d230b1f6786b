"""Feature files: the layer-wise representations of one model on one dataset, in HDF5.

Layout (see docs/architecture.md): root attributes describe model, weights, manifest and code; `features/{pool}`
holds (layers, n, dim) chunked one layer at a time, so reading one layer is one contiguous read; `final/{pool}`
holds the final (normed) representation (n, dim); `sample_id`, `split` and the targets sit beside them.
The file is written under a temporary name and renamed when complete, so a killed job never leaves a file that
looks finished.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from repdrift import __version__
from repdrift.errors import DataError


@dataclass(frozen=True)
class FeatureSet:
    """Features of one pool: `layers` (L, n, D), `final` (n, D), per-sample ids, splits and targets."""

    layers: np.ndarray
    final: np.ndarray
    sample_id: np.ndarray
    split: np.ndarray
    targets: np.ndarray
    attrs: dict

    def select(self, split: str) -> FeatureSet:
        mask = self.split == split
        if not mask.any():
            raise DataError(f"no samples of split '{split}' in this feature file")
        return FeatureSet(
            self.layers[:, mask], self.final[mask], self.sample_id[mask], self.split[mask], self.targets[mask],
            self.attrs,
        )


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_features(
    path: str | Path,
    layers: dict[str, np.ndarray],
    final: dict[str, np.ndarray],
    sample_id: np.ndarray,
    split: np.ndarray,
    targets: np.ndarray,
    attrs: dict,
    dtype: str = "float32",
) -> None:
    """Write one feature file atomically. `layers[pool]` is (L, n, D), `final[pool]` (n, D)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(tmp, "w") as h5:
        for key, value in {**attrs, "pools": list(layers), "dtype": dtype, "code_version": __version__}.items():
            h5.attrs[key] = value
        for pool, array in layers.items():
            n_layers, n, dim = array.shape
            h5.create_dataset(f"features/{pool}", data=array.astype(dtype), chunks=(1, max(n, 1), dim))
            h5.create_dataset(f"final/{pool}", data=final[pool].astype(dtype))
        h5.create_dataset("sample_id", data=np.asarray(sample_id, dtype=object), dtype=h5py.string_dtype())
        h5.create_dataset("split", data=np.asarray(split, dtype=object), dtype=h5py.string_dtype())
        h5.create_dataset("targets", data=np.asarray(targets))
    os.replace(tmp, path)


def read_features(path: str | Path, pool: str) -> FeatureSet:
    """Read every layer of one pool; a missing pool or unreadable file is one clear DataError."""
    try:
        with h5py.File(path, "r") as h5:
            if f"features/{pool}" not in h5:
                raise DataError(f"{path}: no features for pool '{pool}' (has {list(h5.get('features', {}))})")
            return FeatureSet(
                layers=h5[f"features/{pool}"][()],
                final=h5[f"final/{pool}"][()],
                sample_id=h5["sample_id"].asstr()[()],
                split=h5["split"].asstr()[()],
                targets=h5["targets"][()],
                attrs=dict(h5.attrs),
            )
    except OSError as err:
        raise DataError(f"{path}: not a readable feature file ({err})") from None


def write_trajectory(path: str | Path, features: np.ndarray, sample_id: np.ndarray, attrs: dict) -> None:
    """Per-epoch probe features (epochs + 1, L, n, D); index 0 is the model before fine-tuning."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as h5:
        for key, value in {**attrs, "code_version": __version__}.items():
            h5.attrs[key] = value
        epochs, n_layers, n, dim = features.shape
        h5.create_dataset("features", data=features.astype("float32"), chunks=(1, 1, max(n, 1), dim))
        h5.create_dataset("sample_id", data=np.asarray(sample_id, dtype=object), dtype=h5py.string_dtype())
    os.replace(tmp, path)


def read_trajectory(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict]:
    try:
        with h5py.File(path, "r") as h5:
            return h5["features"][()], h5["sample_id"].asstr()[()], dict(h5.attrs)
    except (OSError, KeyError) as err:
        raise DataError(f"{path}: not a readable trajectory file ({err})") from None
