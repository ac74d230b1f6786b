"""Feature files: what one model's representations of one dataset are measured with, in HDF5.

A file holds only what its readers need (layout in docs/architecture.md):
- `final/{pool}` (n, D): the final representation (what the head and the k-NN see) of every image of the
  k-NN splits, with `sample_id`, `split` and `targets` per row: the k-NN bank and queries;
- `layers/{pool}` (L + 1, m, D): blocks 1..L and the final representation of the CKA sample (`cka_sample`) of
  the test split, with `layers_sample_id`: the pre-trained reference of every run's CKA trajectory.
Arrays are preallocated and written batch by batch (`FeatureWriter`), chunked along samples, and read back one
array at a time, so neither writing nor reading holds more than the array it needs. Storage dtype float32 or
float16 (`features.dtype`). The file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from repdrift import __version__
from repdrift.errors import DataError
from repdrift.formats.atomic import atomic_path

DTYPES = ("float32", "float16")
CHUNK_BYTES = 1 << 20  # ~1 MB chunks: one read touches few of them, and a sample slice is contiguous


@dataclass(frozen=True)
class FeatureSet:
    """Final representations of one pool (n, D) with per-sample ids, splits and targets."""

    final: np.ndarray
    sample_id: np.ndarray
    split: np.ndarray
    targets: np.ndarray
    attrs: dict

    def select(self, split: str) -> FeatureSet:
        mask = self.split == split
        if not mask.any():
            raise DataError(f"no samples of split '{split}' in this feature file")
        return FeatureSet(self.final[mask], self.sample_id[mask], self.split[mask], self.targets[mask], self.attrs)


# `cka.dataset_samples: {<dataset>: all}` (rules/common.smk cka_samples): a sample size no test split reaches, so
# `cka_sample` takes the whole split. Explicit rather than the split's count, which is not known when the DAG is
# built (the manifest may not exist yet); not 0, which means "no CKA sample" (repdrift.measurement.extract).
WHOLE_SPLIT = 2**31 - 1


def cka_sample(n: int, size: int) -> np.ndarray:
    """A fixed, evenly spaced subset of the (sorted) test split: identical for every run of a dataset, all of it
    when it has no more than `size` images (`WHOLE_SPLIT`: always all of it)."""
    return np.unique(np.linspace(0, n - 1, num=min(size, n)).round().astype(int))


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise DataError(f"feature dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return dtype


def _chunks(shape: tuple[int, ...], dtype: str) -> tuple[int, ...]:
    """Chunk (1, ..., rows, D) along the sample axis: whole rows, at most CHUNK_BYTES, and the n rows split evenly
    over the chunks (HDF5 stores a partial last chunk whole: 512 rows in chunks of 341 would take 682)."""
    *lead, n, dim = shape
    most = max(1, CHUNK_BYTES // (dim * np.dtype(dtype).itemsize))
    rows = max(1, math.ceil(n / math.ceil(n / most))) if n else 1
    return (*(1 for _ in lead), rows, dim)


class FeatureWriter:
    """Preallocated HDF5 arrays filled slice by slice; the file appears under its name only when closed cleanly.

    with FeatureWriter(path, attrs, dtype) as out:
        out.create("final/cls", (n, D))
        out.write("final/cls", np.s_[0:128], batch)
    """

    def __init__(self, path: str | Path, attrs: dict, dtype: str = "float32"):
        self.path, self.attrs, self.dtype = Path(path), attrs, _check_dtype(dtype)

    def __enter__(self) -> FeatureWriter:
        # The HDF5 file closes before atomic_path renames it (or removes it, when anything here or later fails).
        with contextlib.ExitStack() as stack:
            self._h5 = stack.enter_context(h5py.File(stack.enter_context(atomic_path(self.path)), "w"))
            for key, value in {**self.attrs, "dtype": self.dtype, "code_version": __version__}.items():
                self._h5.attrs[key] = value
            self._stack = stack.pop_all()
        return self

    def create(self, name: str, shape: tuple[int, ...]) -> None:
        self._h5.create_dataset(name, shape=shape, dtype=self.dtype, chunks=_chunks(shape, self.dtype))

    def write(self, name: str, where, values: np.ndarray) -> None:
        self._h5[name][where] = values

    def strings(self, name: str, values) -> None:
        self._h5.create_dataset(name, data=np.asarray(values, dtype=object), dtype=h5py.string_dtype())

    def array(self, name: str, values) -> None:
        self._h5.create_dataset(name, data=np.asarray(values))

    def __exit__(self, *exc) -> bool:
        return self._stack.__exit__(*exc)


def write_features(
    path: str | Path,
    final: dict[str, np.ndarray] | None = None,
    sample_id=None,
    split=None,
    targets=None,
    layers: dict[str, np.ndarray] | None = None,
    layers_sample_id=None,
    attrs: dict | None = None,
    dtype: str = "float32",
) -> None:
    """Write a whole feature file from arrays in memory (tests, small files); extraction streams instead."""
    with FeatureWriter(path, {**(attrs or {}), "pools": list(final or layers)}, dtype) as out:
        for pool, array in (final or {}).items():
            out.create(f"final/{pool}", array.shape)
            out.write(f"final/{pool}", np.s_[:], array)
        if final:
            out.strings("sample_id", sample_id)
            out.strings("split", split)
            out.array("targets", targets)
        for pool, array in (layers or {}).items():
            out.create(f"layers/{pool}", array.shape)
            out.write(f"layers/{pool}", np.s_[:], array)
        if layers:
            out.strings("layers_sample_id", layers_sample_id)


def _open(path: str | Path, what: str, pool: str) -> h5py.File:
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise DataError(f"{path}: not a readable feature file ({err})") from None
    if f"{what}/{pool}" not in h5:
        has = list(h5.get(what, {}))
        h5.close()
        raise DataError(f"{path}: no {what} features for pool '{pool}' (has {has or 'none'})")
    return h5


def read_features(path: str | Path, pool: str) -> FeatureSet:
    """The final representations of one pool and their rows (the k-NN bank and queries)."""
    with _open(path, "final", pool) as h5:
        return FeatureSet(
            final=h5[f"final/{pool}"][()].astype(np.float32),
            sample_id=h5["sample_id"].asstr()[()],
            split=h5["split"].asstr()[()],
            targets=h5["targets"][()],
            attrs=dict(h5.attrs),
        )


def read_layers(path: str | Path, pool: str) -> tuple[np.ndarray, np.ndarray]:
    """Blocks 1..L and the final representation of the CKA sample, (L + 1, m, D) float32, and its sample ids."""
    with _open(path, "layers", pool) as h5:
        return h5[f"layers/{pool}"][()].astype(np.float32), h5["layers_sample_id"].asstr()[()]


def write_trajectory(
    path: str | Path, features: np.ndarray, sample_id: np.ndarray, attrs: dict, dtype: str = "float32"
) -> None:
    """Per-epoch features of the CKA sample (epochs + 1, L + 1, n, D); index 0 is the model before fine-tuning.
    An `epochs` attribute, when given, names the epoch of each entry instead."""
    with FeatureWriter(path, attrs, dtype) as out:
        out.create("features", features.shape)
        out.write("features", np.s_[:], features)
        out.strings("sample_id", sample_id)


class Trajectory:
    """A trajectory file read one epoch at a time: `sample_id`, `attrs`, `len()` epochs, `[epoch]` -> (L + 1, n, D)."""

    def __init__(self, path: str | Path):
        self.path = path
        try:
            with h5py.File(path, "r") as h5:
                self.shape = h5["features"].shape
                self.sample_id, self.attrs = h5["sample_id"].asstr()[()], dict(h5.attrs)
        except (OSError, KeyError) as err:
            raise DataError(f"{path}: not a readable trajectory file ({err})") from None

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def epochs(self) -> list[int]:
        """The epoch of each entry: 0..E, unless the file says otherwise (a WiSE-FT model has only 0 and E)."""
        return [int(e) for e in self.attrs.get("epochs", range(len(self)))]

    def __getitem__(self, epoch: int) -> np.ndarray:
        with h5py.File(self.path, "r") as h5:
            return h5["features"][epoch].astype(np.float32)
