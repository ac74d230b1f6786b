"""Ranking metrics per class: average precision (mAP) and ROC AUC, exact to scikit-learn's definitions.

- Average precision as ``sklearn.metrics.average_precision_score``: AP = sum_k (R_k - R_{k-1}) P_k over the
  distinct score thresholds in decreasing order, so tied scores form one threshold (one precision-recall
  point), with no interpolation.
- ROC AUC as ``sklearn.metrics.roc_auc_score``: the trapezoidal area under the ROC curve, which equals the
  Mann-Whitney statistic P(s_pos > s_neg) + P(s_pos = s_neg) / 2; computed from average ranks.

Inputs (numpy or torch): scores (n, C) with targets (n, C) of 0/1 (multi-label), scores (n, C) with targets
(n,) class indices (multi-class, one class against the rest), or scores (n,) with targets (n,) of 0/1
(binary, one "class"). The means are macro averages over classes.

A class without positives (or, for AUC, without negatives) has no defined AP/AUC: its entry in the
per-class arrays is nan and it is left out of the mean, silently; the mean is nan if no class is left.
(sklearn instead scores such a class 0 with a warning for AP and raises for AUC.)
"""

from __future__ import annotations

import numpy as np

from ._arrays import binary_array, float_array, label_array, to_numpy


def average_precision_per_class(scores, targets) -> np.ndarray:
    """(C,) average precision of each class (nan for a class without positives)."""
    s, y = _sorted_columns(scores, targets)
    n = s.shape[0]
    end = _tie_group_bounds(s)[1]
    tp_at_end = np.take_along_axis(np.cumsum(y, axis=0), end, axis=0)
    # Each positive adds 1/P recall at its tie group's threshold, where precision is tp / (end + 1).
    precision_at_end = tp_at_end / (end + 1.0)
    positives = y.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = (y * precision_at_end).sum(0) / positives
    return np.where(positives > 0, ap, np.nan) if n else np.full(s.shape[1], np.nan)


def mean_average_precision(scores, targets) -> float:
    """Mean over classes with at least one positive of the per-class AP, in [0, 1]; nan if none has one."""
    return _mean_defined(average_precision_per_class(scores, targets))


def roc_auc_per_class(scores, targets) -> np.ndarray:
    """(C,) ROC AUC of each class (nan for a class without positives or without negatives)."""
    s, y = _sorted_columns(scores, targets)
    n = s.shape[0]
    start, end = _tie_group_bounds(s)
    # s is sorted in decreasing order; the ascending rank of a tie group is the average n - position.
    ascending_rank = n - (start + end) / 2.0
    positives = y.sum(0).astype(np.float64)
    negatives = n - positives
    rank_sum = (y * ascending_rank).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
    return np.where((positives > 0) & (negatives > 0), auc, np.nan)


def roc_auc(scores, targets) -> float:
    """Macro ROC AUC: the mean of the per-class AUC over classes with both positives and negatives."""
    return _mean_defined(roc_auc_per_class(scores, targets))


def _mean_defined(values: np.ndarray) -> float:
    ok = ~np.isnan(values)
    return float(values[ok].mean()) if ok.any() else float("nan")


def _sorted_columns(scores, targets) -> tuple[np.ndarray, np.ndarray]:
    """Scores (n, C) sorted in decreasing order per column and the targets (n, C) of 0/1 in that order."""
    s = float_array(scores, "scores", (1, 2))
    t = to_numpy(targets, "targets")
    if s.ndim == 2 and t.ndim == 1:
        labels = label_array(t, "targets", s.shape[0])
        if labels.size and labels.max() >= s.shape[1]:
            raise ValueError(f"targets: class {labels.max()} is out of range for scores with {s.shape[1]} columns")
        y = np.zeros(s.shape, np.int8)
        y[np.arange(s.shape[0]), labels] = 1
    elif t.shape == s.shape:
        y = binary_array(t, "targets")
    else:
        alt = f" or ({s.shape[0]},) of class indices" if s.ndim == 2 else ""
        raise ValueError(f"targets: expected shape {s.shape} of 0/1 targets{alt}, got {t.shape}")
    if s.ndim == 1:
        s, y = s[:, None], y[:, None]
    order = np.argsort(-s, axis=0, kind="stable")
    return np.take_along_axis(s, order, axis=0), np.take_along_axis(y, order, axis=0).astype(np.int64)


def _tie_group_bounds(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each entry of the column-sorted s, the first and last row of its group of equal scores."""
    n = s.shape[0]
    rows = np.arange(n)[:, None]
    new = np.ones(s.shape, bool)
    new[1:] = s[1:] != s[:-1]
    last = np.ones(s.shape, bool)
    last[:-1] = new[1:]
    start = np.maximum.accumulate(np.where(new, rows, 0), axis=0)
    end = np.minimum.accumulate(np.where(last, rows, n)[::-1], axis=0)[::-1]
    return start, end
