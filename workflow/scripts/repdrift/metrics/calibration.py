"""Expected calibration error and reliability-diagram data.

Top-label ECE of Guo, Pleiss, Sun and Weinberger, "On Calibration of Modern Neural Networks", ICML 2017,
as in their reference code (github.com/gpleiss/temperature_scaling, ``_ECELoss``): confidence = the largest
probability, correct = its class is the label, n_bins equal-width bins closed on the right, (lo, hi], and

    ECE = sum_b (n_b / n) |accuracy_b - confidence_b|.

Bin edges are ``np.linspace(0, 1, n_bins + 1)`` in float64, compared with the confidences as float64 (the
reference compares float32 values with float32 edges, so a confidence exactly on an edge may land one bin
apart there). A top-label confidence is >= 1/C > 0, so no prediction falls below the first bin.

Inputs (numpy or torch):
- multi-class: probs (n, C) with rows summing to 1 (within 1e-2: catches logits or sigmoid outputs) and
  labels (n,) class indices; the prediction is the first argmax.
- multi-label: probs (n, C) of independent probabilities and labels (n, C) of 0/1; each (sample, class)
  pair is one binary prediction, i.e. two classes with probabilities (1 - p, p): confidence max(p, 1 - p),
  predicted positive iff p > 0.5.
- binary: probs (n,) = P(positive) and labels (n,) of 0/1, treated like one multi-label column.
"""

from __future__ import annotations

import numpy as np

from ._arrays import binary_array, float_array, label_array, to_numpy


def expected_calibration_error(probs, labels, n_bins: int = 15) -> float:
    """Top-label ECE in [0, 1] with (lo, hi] bins (Guo et al. 2017); see the module docstring for inputs."""
    return binned_ece(*top_label(probs, labels), n_bins=n_bins)


def binned_ece(confidence, correct, n_bins: int = 15) -> float:
    """ECE of top-label predictions given as their confidence (n,) in [0, 1] and correctness (n,) of 0/1.

    For classifiers whose probabilities are not kept whole, e.g. the k-NN vote (repdrift.metrics.knn_top_label).
    """
    confidence = float_array(confidence, "confidence", 1).astype(np.float64)
    correct = float_array(correct, "correct", 1).astype(np.float64)
    if confidence.size == 0 or confidence.shape != correct.shape:
        raise ValueError(
            f"confidence and correct: expected the same non-zero length, got {confidence.size} and {correct.size}"
        )
    if confidence.min() < 0 or confidence.max() > 1:
        raise ValueError(f"confidence: expected values in [0, 1], got [{confidence.min()}, {confidence.max()}]")
    bins = _bin_index(confidence, n_bins)
    gap = np.bincount(bins, weights=confidence - correct, minlength=n_bins)  # n_b (conf_b - acc_b)
    return float(np.abs(gap).sum() / confidence.size)


def reliability_diagram(probs, labels, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Per-bin data for a reliability diagram, each an array of length n_bins.

    Keys: ``lower``, ``upper`` (bin edges, the bin being (lower, upper]), ``count`` (predictions in the
    bin), ``confidence`` (their mean confidence) and ``accuracy`` (their fraction correct); the last two
    are nan for empty bins. ``sum(count / count.sum() * |accuracy - confidence|)`` over non-empty bins is
    :func:`expected_calibration_error`.
    """
    confidence, correct = top_label(probs, labels)
    bins = _bin_index(confidence, n_bins)
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(bins, weights=confidence, minlength=n_bins) / count
        accuracy = np.bincount(bins, weights=correct, minlength=n_bins) / count
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return {"lower": edges[:-1], "upper": edges[1:], "count": count, "confidence": mean_conf, "accuracy": accuracy}


def top_label(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, correct as 0.0/1.0), both float64 and flat, one entry per prediction."""
    p = float_array(probs, "probs", (1, 2))
    if p.size == 0:
        raise ValueError("probs: calibration needs at least one prediction, got none")
    if p.min() < 0 or p.max() > 1:
        raise ValueError(f"probs: expected probabilities in [0, 1], got values in [{p.min()}, {p.max()}]")
    p = p.astype(np.float64)
    lab = to_numpy(labels, "labels")
    if p.ndim == 2 and lab.ndim == 1:
        y = label_array(lab, "labels", p.shape[0])
        if y.max() >= p.shape[1]:
            raise ValueError(f"labels: class {y.max()} is out of range for probs with {p.shape[1]} columns")
        sums = p.sum(1)
        if np.abs(sums - 1).max() > 1e-2:
            worst = sums[np.abs(sums - 1).argmax()]
            raise ValueError(
                f"probs: multi-class rows must sum to 1 (softmax outputs), found a row summing to {worst}; "
                "for multi-label inputs pass labels of shape (n, C)"
            )
        pred = p.argmax(1)
        return p[np.arange(p.shape[0]), pred], (pred == y).astype(np.float64)
    if lab.shape != p.shape:
        raise ValueError(
            f"labels: expected shape ({p.shape[0]},) of class indices or {p.shape} of 0/1 targets, got {lab.shape}"
        )
    y = binary_array(lab, "labels").ravel()
    p = p.ravel()
    return np.maximum(p, 1 - p), ((p > 0.5) == (y == 1)).astype(np.float64)


def _bin_index(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Index b of the bin (edges[b], edges[b + 1]] holding each confidence."""
    if not (isinstance(n_bins, (int, np.integer)) and n_bins >= 1):
        raise ValueError(f"n_bins: expected a positive integer, got {n_bins!r}")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # side="left" finds the first edge >= c, so c == edge belongs to the bin below it (closed on the right).
    return np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
