"""Input conversion and validation shared by the metrics (numpy only; torch tensors are duck-typed)."""

from __future__ import annotations

import numpy as np


def to_numpy(x, name: str) -> np.ndarray:
    """Return `x` as a numpy array without importing torch: tensors are detached and moved to the CPU."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name}: expected real values, got dtype {arr.dtype}")
    return arr


def check_finite(arr: np.ndarray, name: str) -> None:
    """Raise if `arr` holds NaN or inf (they would silently poison every sum downstream)."""
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name}: expected finite values, found {bad} NaN/inf entries")


def float_array(x, name: str, ndim: int | tuple[int, ...], finite: bool = True) -> np.ndarray:
    """A finite floating array with the given number of dimensions; integer/bool input becomes float64.

    float16 is widened to float32, the narrowest type BLAS multiplies; long double is narrowed to float64.
    `finite=False` leaves the finiteness check to the caller (one that reduces the array anyway can check that).
    """
    arr = to_numpy(x, name)
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if arr.ndim not in ndims:
        want = " or ".join(str(k) for k in ndims)
        raise ValueError(f"{name}: expected a {want}-d array, got shape {arr.shape}")
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    elif arr.dtype.itemsize < 4:
        arr = arr.astype(np.float32)
    elif arr.dtype.itemsize > 8:  # long double: no BLAS for it
        arr = arr.astype(np.float64)
    if finite:
        check_finite(arr, name)
    return arr


def label_array(x, name: str, n: int | None = None) -> np.ndarray:
    """A 1-d int64 array of non-negative class indices (length `n` if given)."""
    arr = to_numpy(x, name)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d array of class indices, got shape {arr.shape}")
    if arr.dtype.kind == "f":
        check_finite(arr, name)
        if not np.array_equal(arr, np.round(arr)):
            raise ValueError(f"{name}: expected integer class indices, got non-integer floats")
    elif arr.dtype.kind not in "iub":
        raise ValueError(f"{name}: expected integer class indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name}: expected {n} labels (one per sample), got {arr.shape[0]}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name}: expected non-negative class indices, got minimum {arr.min()}")
    return arr


def binary_array(x, name: str) -> np.ndarray:
    """An array of 0/1 targets (any shape) as int8."""
    arr = to_numpy(x, name)
    if arr.dtype.kind == "f":
        check_finite(arr, name)
    if arr.size and not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{name}: expected 0/1 targets, found values {np.unique(arr)[:5].tolist()}")
    return arr.astype(np.int8)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n along the last axis, ties sharing their average rank: scipy.stats.rankdata(values, axis=-1)
    for finite input, in numpy. Vectorised over rows (a bootstrap ranks thousands of replicates at once) and
    without scipy.stats, whose import costs a demo measure job more time than all its measures."""
    values = np.asarray(values, dtype=float)
    rows = values.reshape(-1, values.shape[-1]) if values.ndim else values.reshape(1, 1)
    n = rows.shape[1]
    order = np.argsort(rows, axis=1, kind="stable")
    ordered = np.take_along_axis(rows, order, axis=1)
    starts = np.ones(ordered.shape, dtype=bool)  # where a run of equal values begins; every row starts one
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    group = np.cumsum(starts) - 1  # the run of each sorted position, numbered across the rows
    first = np.flatnonzero(starts.ravel()) % n + 1  # each run's first rank
    mean_rank = first + (np.bincount(group) - 1) / 2.0
    ranks = np.empty_like(rows)
    np.put_along_axis(ranks, order, mean_rank[group].reshape(rows.shape), axis=1)
    return ranks.reshape(values.shape)
