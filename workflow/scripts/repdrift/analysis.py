"""The paper's correlation analysis (Zu et al. 2025, Sec. 5 / Fig. 5): similarity discretised into intervals.

`interval_correlation(similarity, metric)`:
1. interval centres evenly spaced over the observed similarity range (min and max are the end centres);
2. each run assigned to the nearest centre (ties go to the lower centre);
3. within each interval, runs whose metric lies beyond 1.5 IQR of that interval's quartiles are removed
   (`outliers="iqr"`; quartiles by numpy's linear interpolation; `outliers="none"` keeps every run);
4. empty intervals dropped; the line is the least-squares fit of each interval's mean metric on its centre,
   with Pearson's r and its two-sided p-value (scipy.stats.linregress);
5. a percentile bootstrap confidence interval for r: runs resampled with replacement, steps 1-4 redone.
Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

OUTLIER_RULES = ("iqr", "none")


@dataclass(frozen=True)
class IntervalFit:
    slope: float
    intercept: float
    r: float
    p_value: float
    r_ci: tuple[float, float]
    centres: np.ndarray  # of the non-empty intervals
    means: np.ndarray
    counts: np.ndarray  # runs kept per interval
    removed: int  # runs removed as outliers


def _intervals(similarity: np.ndarray, metric: np.ndarray, n_intervals: int, outliers: str):
    centres = np.linspace(similarity.min(), similarity.max(), n_intervals)
    nearest = np.abs(similarity[:, None] - centres[None, :]).argmin(axis=1)
    kept_centres, means, counts, removed = [], [], [], 0
    for i, centre in enumerate(centres):
        values = metric[nearest == i]
        if values.size == 0:
            continue
        if outliers == "iqr":
            q1, q3 = np.percentile(values, [25, 75])
            spread = 1.5 * (q3 - q1)
            inside = (values >= q1 - spread) & (values <= q3 + spread)
            removed += int((~inside).sum())
            values = values[inside]
        kept_centres.append(centre)
        means.append(values.mean())
        counts.append(values.size)
    return np.array(kept_centres), np.array(means), np.array(counts), removed


def _fit(centres: np.ndarray, means: np.ndarray):
    if centres.size < 3 or np.ptp(means) == 0:
        return None  # r is undefined on fewer than 3 points or a constant metric
    return stats.linregress(centres, means)


def interval_correlation(
    similarity,
    metric,
    n_intervals: int = 10,
    outliers: str = "iqr",
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> IntervalFit:
    """Fit interval-mean `metric` on interval-centre `similarity`; see the module docstring for every step.

    Raises ValueError for mismatched or non-finite input, fewer than 3 non-empty intervals, a constant
    similarity or metric, or an unknown outlier rule.
    """
    similarity = np.asarray(similarity, dtype=np.float64).ravel()
    metric = np.asarray(metric, dtype=np.float64).ravel()
    if similarity.shape != metric.shape:
        raise ValueError(f"similarity and metric differ in length: {similarity.size} vs {metric.size}")
    if not (np.isfinite(similarity).all() and np.isfinite(metric).all()):
        raise ValueError("similarity and metric must be finite (no NaN or inf)")
    if outliers not in OUTLIER_RULES:
        raise ValueError(f"outliers must be one of {OUTLIER_RULES}, got {outliers!r}")
    if n_intervals < 3:
        raise ValueError(f"n_intervals must be at least 3, got {n_intervals}")
    if similarity.size < 3 or np.ptp(similarity) == 0:
        raise ValueError("need at least 3 runs with different similarities to fit a line")
    centres, means, counts, removed = _intervals(similarity, metric, n_intervals, outliers)
    line = _fit(centres, means)
    if line is None:
        raise ValueError(f"only {centres.size} non-empty intervals or a constant metric: no line can be fitted")

    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_bootstrap):
        pick = rng.integers(0, similarity.size, similarity.size)
        if np.ptp(similarity[pick]) == 0:
            continue
        resampled = _fit(*_intervals(similarity[pick], metric[pick], n_intervals, outliers)[:2])
        if resampled is not None:
            boot.append(resampled.rvalue)
    tail = (1 - confidence) / 2 * 100
    r_ci = tuple(np.percentile(boot, [tail, 100 - tail])) if boot else (np.nan, np.nan)
    return IntervalFit(
        slope=float(line.slope),
        intercept=float(line.intercept),
        r=float(line.rvalue),
        p_value=float(line.pvalue),
        r_ci=(float(r_ci[0]), float(r_ci[1])),
        centres=centres,
        means=means,
        counts=counts,
        removed=removed,
    )
