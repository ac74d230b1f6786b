"""Weighted k-NN classification of frozen features: the DINO protocol.

Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021, and their
``eval_knn.py``: bank and query features are L2-normalised, similarity is the cosine (a dot product), the k
most similar bank samples vote for their class with weight exp(s / T), T = 0.07, k = 20 by default.
Differences from that script, none of which changes a prediction except in exact ties:
- class scores are the votes divided by their sum (probabilities), computed as exp((s - s_max) / T) so
  that small temperatures cannot overflow;
- a zero feature vector stays zero after normalisation (torch's ``F.normalize`` eps of 1e-12), so its
  similarity to everything is 0;
- ties in the class score go to the smallest class index (numpy argmax); among bank samples with exactly
  the same similarity at the k-th place, which one is kept is deterministic but unspecified.
The similarities are computed in the features' precision (float32 features: float32 products, cosine error
~1e-7), over chunks of queries so that the (chunk, bank) similarity block stays within ``max_block_bytes``.
"""

from __future__ import annotations

import numpy as np

from ._arrays import float_array, label_array

_MAX_BLOCK_BYTES = 1 << 27  # 128 MB of similarities per query chunk


def knn_classify(
    train_features,
    train_labels,
    test_features,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
    *,
    max_block_bytes: int = _MAX_BLOCK_BYTES,
):
    """Predict classes of test_features (n, d) from the bank train_features (N, d) with labels (N,).

    Returns (predictions (n,) int64, scores (n, C) float64 whose rows sum to 1). C is `num_classes`, by
    default max(train_labels) + 1. k must not exceed the bank size N.
    """
    bank, labels, queries, num_classes = _prepare(train_features, train_labels, test_features, num_classes)
    _check_k(k, bank.shape[0])
    _check_temperature(temperature)
    scores = np.empty((queries.shape[0], num_classes))
    for lo, hi, sims, idx in _neighbours(queries, bank, k, max_block_bytes):
        scores[lo:hi] = _vote(sims, labels[idx], temperature, num_classes)
    return scores.argmax(1), scores


def knn_accuracy(
    train_features,
    train_labels,
    test_features,
    test_labels,
    ks=(10, 20, 100, 200),
    temperature: float = 0.07,
    num_classes: int | None = None,
    *,
    max_block_bytes: int = _MAX_BLOCK_BYTES,
) -> dict[int, float]:
    """Top-1 accuracy of :func:`knn_classify` for every k in `ks`, from one top-k search at max(ks).

    Returns {k: accuracy in [0, 1]}. Every k must be at most the bank size.
    """
    top = knn_top_label(
        train_features, train_labels, test_features, ks, temperature, num_classes, max_block_bytes=max_block_bytes
    )
    n_queries = next(iter(top.values()))[0].size
    test_labels = label_array(test_labels, "test_labels", n_queries)
    return {k: float(np.count_nonzero(pred == test_labels)) / n_queries for k, (pred, _) in top.items()}


def knn_top_label(
    train_features,
    train_labels,
    test_features,
    ks=(10, 20, 100, 200),
    temperature: float = 0.07,
    num_classes: int | None = None,
    *,
    max_block_bytes: int = _MAX_BLOCK_BYTES,
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Prediction and its vote share, for every k in `ks`, from one top-k search at max(ks).

    Returns {k: (predictions (n,) int64, confidence (n,) float64)}: the predicted class and its score in
    :func:`knn_classify`'s normalised vote, i.e. the top-label probability a calibration error is taken of.
    Only these two columns are kept, so memory stays O(n) for any number of classes.
    """
    bank, labels, queries, num_classes = _prepare(train_features, train_labels, test_features, num_classes)
    if queries.shape[0] == 0:
        raise ValueError("test_features: k-NN needs at least one query, got none")
    ks = sorted({int(k) for k in ks})
    if not ks:
        raise ValueError("ks: expected at least one k")
    for k in ks:
        _check_k(k, bank.shape[0])
    _check_temperature(temperature)
    out = {k: (np.empty(queries.shape[0], np.int64), np.empty(queries.shape[0])) for k in ks}
    for lo, hi, sims, idx in _neighbours(queries, bank, ks[-1], max_block_bytes):
        neighbour_labels = labels[idx]
        for k in ks:  # neighbours come sorted by similarity, so the first k are the top k
            scores = _vote(sims[:, :k], neighbour_labels[:, :k], temperature, num_classes)
            pred = scores.argmax(1)
            out[k][0][lo:hi] = pred
            out[k][1][lo:hi] = scores[np.arange(hi - lo), pred]
    return out


def top_k(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest entries of each row of sims (m, N), sorted descending: (values (m, k), columns (m, k)).

    np.argpartition over a 50,000-wide row costs ~0.5 ms, more than the similarity GEMM itself, so rows
    are first split into groups of ~sqrt(N / 8k) strided columns. The k groups with the largest
    maxima hold every top-k value: a top-k element in an unchosen group is outranked by k chosen group
    maxima, a contradiction. The exact partition then runs on those k groups only.
    """
    m, n = sims.shape
    # Elements per group: n / g group maxima to partition vs k * g candidates to gather, each gather a cache
    # miss (strided columns); sqrt(n / (8k)) measured fastest, ~30 us per 50,000-wide row at k = 20.
    g = int(np.sqrt(n / (8 * k)))
    if g >= 2:
        groups = n // g
        group_max = sims[:, : groups * g].reshape(m, g, groups).max(axis=1)  # group j = columns j, j+groups, ...
        best = np.argpartition(group_max, groups - k, axis=1)[:, groups - k :]
        cols = (best[:, None, :] + groups * np.arange(g)[None, :, None]).reshape(m, g * k)
        if n > groups * g:  # the few columns left over are candidates outright
            tail = np.broadcast_to(np.arange(groups * g, n), (m, n - groups * g))
            cols = np.concatenate([cols, tail], axis=1)
        cand = np.take_along_axis(sims, cols, axis=1)
    else:
        cols, cand = None, sims
    part = np.argpartition(cand, cand.shape[1] - k, axis=1)[:, cand.shape[1] - k :]
    vals = np.take_along_axis(cand, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    vals = np.take_along_axis(vals, order, axis=1)
    part = np.take_along_axis(part, order, axis=1)
    return vals, (part if cols is None else np.take_along_axis(cols, part, axis=1))


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm (norms in float64); rows with norm < 1e-12 are left as they are."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    return x * (1.0 / np.maximum(norms, 1e-12)).astype(x.dtype)[:, None]


def _neighbours(queries, bank, k, max_block_bytes):
    """Yield (lo, hi, similarities (m, k) sorted descending, bank indices (m, k)) per chunk of queries."""
    n_bank = bank.shape[0]
    chunk = int(max(1, min(queries.shape[0], max_block_bytes // (n_bank * bank.dtype.itemsize))))
    block = np.empty((chunk, n_bank), bank.dtype)  # reused: a fresh block per chunk costs page faults
    bank_t = bank.T
    for lo in range(0, queries.shape[0], chunk):
        hi = min(lo + chunk, queries.shape[0])
        sims = np.matmul(queries[lo:hi], bank_t, out=block[: hi - lo])
        vals, idx = top_k(sims, k)
        yield lo, hi, vals, idx


def _vote(sims, neighbour_labels, temperature, num_classes):
    """Class scores (m, C) summing to 1: sum of exp(s / T) over neighbours of each class, normalised."""
    m, k = sims.shape
    sims = sims.astype(np.float64)
    weights = np.exp((sims - sims[:, :1]) / temperature)  # sims are sorted, so column 0 is the row max
    flat = (np.arange(m)[:, None] * num_classes + neighbour_labels).ravel()
    scores = np.bincount(flat, weights=weights.ravel(), minlength=m * num_classes).reshape(m, num_classes)
    return scores / scores.sum(1, keepdims=True)


def _prepare(train_features, train_labels, test_features, num_classes):
    bank = float_array(train_features, "train_features", 2)
    queries = float_array(test_features, "test_features", 2)
    if bank.shape[0] == 0:
        raise ValueError("train_features: the k-NN bank is empty")
    if bank.shape[1] != queries.shape[1]:
        widths = f"{bank.shape[1]} and {queries.shape[1]}"
        raise ValueError(f"train_features and test_features must have the same width: got {widths}")
    labels = label_array(train_labels, "train_labels", bank.shape[0])
    if num_classes is None:
        num_classes = int(labels.max()) + 1
    elif labels.max() >= num_classes:
        raise ValueError(f"train_labels: label {labels.max()} is out of range for num_classes = {num_classes}")
    dtype = np.result_type(bank.dtype, queries.dtype)
    bank, queries = l2_normalize(bank.astype(dtype, copy=False)), l2_normalize(queries.astype(dtype, copy=False))
    return bank, labels, queries, int(num_classes)


def _check_k(k, n_bank):
    if not (isinstance(k, (int, np.integer)) and 1 <= k <= n_bank):
        raise ValueError(f"k: expected an integer in [1, bank size = {n_bank}], got {k!r}")


def _check_temperature(temperature):
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature: expected a positive finite value, got {temperature!r}")
