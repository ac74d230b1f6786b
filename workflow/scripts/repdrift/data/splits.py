"""Seeded, stratified train/val/test assignment for datasets that publish no split (APTOS 2019, generic CSV).

Per split, the total is ``round(n * fraction)`` and is shared among classes by largest remainder, so the
totals are exact (APTOS: 3,662 -> 2,930 / 366 / 366, the paper's counts) and every class keeps its share. A class
with >= 3 images gets at least one val and one test image; every class keeps at least one train image.
Items are assigned in the order given: callers sort them (by id) first so the result does not depend on
file order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from repdrift.errors import ConfigError


def _quotas(counts: np.ndarray, fraction: float) -> np.ndarray:
    ideal = counts * fraction
    quota = np.floor(ideal).astype(int)
    short = int(round(counts.sum() * fraction)) - quota.sum()
    # Largest fractional part first; ties go to the lower class index (stable sort).
    for c in np.argsort(-(ideal - quota), kind="stable")[: max(short, 0)]:
        quota[c] += 1
    return quota


def stratified_split(labels: Sequence[int], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> list[str]:
    """Return a split name (train | val | test) per item, stratified by label and reproducible from seed."""
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ConfigError(f"split fractions {tuple(fractions)}: expected three non-negative numbers summing to 1")
    y = np.asarray(labels)
    classes, inverse = np.unique(y, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(classes))
    n_val, n_test = _quotas(counts, fractions[1]), _quotas(counts, fractions[2])
    for quota, f in ((n_val, fractions[1]), (n_test, fractions[2])):
        quota[(counts >= 3) & (quota == 0) & (f > 0)] = 1
    # Keep at least one training image per class.
    over = np.maximum(n_val + n_test - (counts - 1), 0)
    n_test -= np.minimum(over, n_test)
    n_val = np.minimum(n_val, counts - 1 - n_test).clip(0)
    rng = np.random.default_rng(seed)
    out = np.full(len(y), "train", dtype=object)
    for c in range(len(classes)):
        idx = rng.permutation(np.flatnonzero(inverse == c))
        out[idx[: n_test[c]]] = "test"
        out[idx[n_test[c] : n_test[c] + n_val[c]]] = "val"
    return out.tolist()
