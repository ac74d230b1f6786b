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


# --- The similarity space (paper Eqs. 3-6) ------------------------------------------------------------------
DIVERGENCES = ("loss", "accuracy")


def divergence(pretrained, finetuned, kind: str = "loss"):
    """A_X in [0, 1]: how far the fine-tuned model's task performance is from the pre-trained model's.

    `loss`: |L_ft - L_pre| / max(L_ft, L_pre), the test losses of the fine-tuned model and of the pre-trained
    model's linear probe (frozen backbone + trained head), normalised by the larger so it lies in [0, 1].
    `accuracy`: |score_ft - score_pre| (accuracy, or mAP for multi-label data), already in [0, 1].
    """
    pre, ft = np.asarray(pretrained, dtype=np.float64), np.asarray(finetuned, dtype=np.float64)
    if kind == "loss":
        return np.abs(ft - pre) / np.maximum(np.maximum(ft, pre), np.finfo(float).tiny)
    if kind == "accuracy":
        return np.abs(ft - pre)
    raise ValueError(f"divergence must be one of {DIVERGENCES}, got {kind!r}")


def in_similarity_space(similarity, divergence_values, eta: float, eps: float):
    """Membership in T_X(eta, eps) = {theta : M_X >= 1 - eta and A_X <= eps}."""
    return (np.asarray(similarity) >= 1 - eta) & (np.asarray(divergence_values) <= eps)


# --- Study tables (polars) ----------------------------------------------------------------------------------
def _metric(runs, name: str, layer: int | None = None):
    import polars as pl

    rows = runs.filter(pl.col("metric") == name)
    if layer is not None:
        rows = rows.filter(pl.col("layer") == layer)
    return rows.select("run", "dataset", "backbone", "method", "pool", "seed", pl.col("value").alias(name))


def resolve_layer(runs, layer: int | None) -> int:
    """`None` = the last block; a layer outside the model's is a clear error naming the config key."""
    import polars as pl

    layers = runs.filter(pl.col("metric") == "cka")["layer"]
    if layer is None:
        return int(layers.max())
    if layer not in set(layers):
        raise ValueError(f"analysis.cka_layer: block {layer} does not exist (blocks 1..{layers.max()})")
    return int(layer)


def similarity_space_table(runs, layer: int | None, kind: str = "loss"):
    """One row per fine-tuned run (Full, Scratch) with M_X (CKA at `layer`) and A_X against the pre-trained
    model's linear probe: the Linear run of the same dataset, backbone and pool (mean over its seeds).
    Runs with no such Linear run are left out (and listed on stdout)."""
    import polars as pl

    layer = resolve_layer(runs, layer)
    keys = ["dataset", "backbone", "pool"]
    runs_wide = (
        _metric(runs, "score")
        .join(_metric(runs, "test_loss").select("run", "test_loss"), on="run")
        .join(_metric(runs, "cka", layer).select("run", pl.col("cka").alias("similarity")), on="run")
    )
    probes = (
        runs_wide.filter(pl.col("method") == "linear")
        .group_by(keys)
        .agg(probe_score=pl.col("score").mean(), probe_loss=pl.col("test_loss").mean())
    )
    tuned = runs_wide.filter(pl.col("method") != "linear")
    missing = tuned.join(probes, on=keys, how="anti").select(keys).unique().sort(keys)
    for row in missing.iter_rows(named=True):  # said in the log; those runs have no A_X
        print(f"similarity space: no Linear run (the pre-trained probe) for {row}; its runs are left out")
    space = tuned.join(probes, on=keys)
    pre, ft = ("probe_loss", "test_loss") if kind == "loss" else ("probe_score", "score")
    values = divergence(space[pre].to_numpy(), space[ft].to_numpy(), kind)
    return space.with_columns(divergence=pl.Series(values), layer=pl.lit(layer), divergence_kind=pl.lit(kind))


def sweep_table(space, etas, epss):
    """Share of runs inside T_X(eta, eps) per dataset and backbone, over a grid of (eta, eps)."""
    import polars as pl

    rows = []
    for (dataset, backbone), group in space.group_by("dataset", "backbone", maintain_order=True):
        for eta in etas:
            for eps in epss:
                inside = in_similarity_space(group["similarity"], group["divergence"], eta, eps)
                rows.append(dict(dataset=dataset, backbone=backbone, eta=eta, eps=eps, runs=group.height,
                                 inside=int(inside.sum()), share=float(inside.mean())))
    return pl.DataFrame(rows).sort("dataset", "backbone", "eta", "eps")


def correlation_table(runs, metrics, n_intervals: int, outliers: str, seed: int = 0):
    """interval_correlation of CKA (every block) against each metric, per backbone, over all its runs."""
    import polars as pl

    rows = []
    layers = sorted(set(runs.filter(pl.col("metric") == "cka")["layer"]))
    for metric in metrics:
        for layer in layers:
            joined = _metric(runs, "cka", layer).join(_metric(runs, metric).select("run", metric), on="run")
            for (backbone,), group in joined.group_by("backbone", maintain_order=True):
                try:
                    fit = interval_correlation(group["cka"], group[metric], n_intervals, outliers, seed=seed)
                except ValueError as err:  # too few distinct runs: recorded, not fatal
                    rows.append(dict(metric=metric, layer=layer, backbone=backbone, runs=group.height, note=str(err)))
                    continue
                rows.append(dict(metric=metric, layer=layer, backbone=backbone, runs=group.height, slope=fit.slope,
                                 intercept=fit.intercept, r=fit.r, p_value=fit.p_value, r_lo=fit.r_ci[0],
                                 r_hi=fit.r_ci[1], intervals=len(fit.centres), removed=fit.removed, note=""))
    schema = {"metric": pl.Utf8, "layer": pl.Int64, "backbone": pl.Utf8, "runs": pl.Int64, "slope": pl.Float64,
              "intercept": pl.Float64, "r": pl.Float64, "p_value": pl.Float64, "r_lo": pl.Float64,
              "r_hi": pl.Float64, "intervals": pl.Int64, "removed": pl.Int64, "note": pl.Utf8}
    return pl.DataFrame(rows, schema=schema)
