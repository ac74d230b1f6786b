"""The paper's analyses (Zu et al. 2025): the correlation fit of Sec. 3.3 / Fig. 5, the similarity space of Sec. 2.4,
and the study tables they read (polars), each on the runs the paper uses.

The correlation fit (Fig. 5): similarity discretised into intervals. The paper says only "Outliers are removed, and
similarities are consolidated for uniformity"; the rules below are this study's reading of it, chosen so that no
single run can set the line.

`interval_correlation(similarity, metric)`:
1. similarity outliers: runs whose similarity lies beyond 1.5 IQR of the quartiles of all the runs' similarity
   are removed (`outliers="iqr"`; Tukey's fences, quartiles by numpy's linear interpolation), so that one run far
   from the others cannot stretch the range and form an interval of its own;
2. interval centres evenly spaced over the remaining runs' similarity range (min and max are the end centres);
3. each remaining run assigned to the nearest centre (ties go to the lower centre);
4. within each interval, runs whose metric lies beyond 1.5 IQR of that interval's quartiles are removed
   (`outliers="iqr"`; `outliers="none"` skips steps 1 and 4);
5. intervals with fewer than `min_interval_runs` runs left are not used (a lone run is no interval mean); the fit
   needs at least `min_intervals` used intervals (and 3), else it is reported as "too few intervals", r undefined;
6. the line is the least-squares fit of each used interval's mean metric on its centre, with Pearson's r and its
   two-sided p-value (scipy.stats.linregress);
7. a percentile bootstrap confidence interval for r: runs resampled with replacement, steps 1-6 redone (all
   resamples at once, with the same draws and the same results as one at a time). A replicate whose resample
   leaves too few intervals, or constant means, has no r (nan); the fit states how many replicates were valid,
   and a fit with fewer than half of them valid (MIN_VALID_SHARE: "mostly degenerate") is not usable for a
   verdict, as its CI would describe only the resamples that happened to be fittable.
Torch-free.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import stats

from repdrift.errors import ConfigError
from repdrift.study import SIMILARITY_COLUMN, knn_ece_metric, knn_metric

OUTLIER_RULES = ("iqr", "none")
# A fit with fewer than this share of valid bootstrap replicates is not usable for a verdict (step 7).
MIN_VALID_SHARE = 0.5
# Why a run of a fit is not used (IntervalFit.excluded, correlation_points.parquet `excluded`); "" = used.
SIMILARITY_OUTLIER, METRIC_OUTLIER, SPARSE = "similarity outlier", "metric outlier", "interval of too few runs"
# The paper's methods: its analyses (similarity space sweep, Fig. 1a) read these; the preserving ones have their own.


@dataclass(frozen=True)
class IntervalFit:
    slope: float  # nan (and intercept, r, p_value, r_ci) when no line could be fitted: see `note`
    intercept: float
    r: float
    p_value: float  # of r over the interval means: their count, not the runs', is the sample size
    r_ci: tuple[float, float]
    centres: np.ndarray  # of the used intervals
    means: np.ndarray
    counts: np.ndarray  # runs per used interval
    assigned: np.ndarray  # per run: the centre of its interval (nan for a similarity outlier, which has none)
    excluded: np.ndarray  # per run: why it is not used in the fit ("" = used; SIMILARITY_OUTLIER, ...)
    boot: np.ndarray  # n_bootstrap replicates of r; nan where a resample left too few intervals or constant means
    note: str  # "" when the fit is usable for a verdict; otherwise why not (too few intervals, degenerate bootstrap)

    @property
    def kept(self) -> np.ndarray:
        """Per run: used in the fit."""
        return self.excluded == ""

    @property
    def removed(self) -> int:
        """Runs removed as outliers (of similarity or of the metric)."""
        return int(np.isin(self.excluded, (SIMILARITY_OUTLIER, METRIC_OUTLIER)).sum())

    @property
    def valid(self) -> int:
        """Bootstrap replicates with an r."""
        return int(np.isfinite(self.boot).sum())

    @property
    def usable(self) -> bool:
        return self.note == ""


# The distance matrix (replicates x runs x intervals) is built this many entries at a time (32 MiB).
_BLOCK = 1 << 22


def _centres(lo: np.ndarray, hi: np.ndarray, n_intervals: int) -> np.ndarray:
    """np.linspace(lo[i], hi[i], n_intervals) for each row i, to the bit."""
    # With array bounds linspace computes each row as a scalar call would, unless some row's step underflows to 0:
    # that switches every row to another formula (numpy gh-5437), so such rows get a call of their own.
    tiny = (hi - lo) / (n_intervals - 1) == 0
    centres = np.empty((lo.size, n_intervals))
    for rows in (tiny, ~tiny):
        centres[rows] = np.linspace(lo[rows], hi[rows], n_intervals, axis=1)
    return centres


def _by_size(values: np.ndarray, sizes: np.ndarray):
    """The segments of `values` (back to back, sizes[i] long) as matrices, one per distinct non-zero size: yields
    (segment numbers, (segments, size) matrix). A row of such a matrix reduces (mean, percentile) to the same bits
    as its segment alone does; segments of different lengths cannot share one (numpy sums pairwise, by length)."""
    starts = np.cumsum(sizes) - sizes
    for size in np.unique(sizes[sizes > 0]):
        segments = np.flatnonzero(sizes == size)
        yield segments, values[starts[segments, None] + np.arange(size)]


def _fences(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tukey's fences of each row of a matrix: the quartiles -/+ 1.5 IQR."""
    q1, q3 = np.percentile(values, [25, 75], axis=1)
    spread = 1.5 * (q3 - q1)
    return q1 - spread, q3 + spread


def _iqr_kept(values: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Per value, whether it lies within Tukey's fences of its segment (segments as in `_by_size`)."""
    low, high = np.full(sizes.size, np.nan), np.full(sizes.size, np.nan)
    for segments, members in _by_size(values, sizes):
        low[segments], high[segments] = _fences(members)
    segment = np.repeat(np.arange(sizes.size), sizes)
    return (values >= low[segment]) & (values <= high[segment])


class _Intervals(NamedTuple):
    centres: np.ndarray  # (rows, K)
    nearest: np.ndarray  # (rows, runs): each run's interval, K for a similarity outlier
    kept: np.ndarray  # (rows, runs): in an interval and not a metric outlier
    counts: np.ndarray  # (rows, K): runs kept per interval
    means: np.ndarray  # (rows, K): mean kept metric, nan where none is kept


def _intervals(similarity: np.ndarray, metric: np.ndarray, n_intervals: int, outliers: str) -> _Intervals:
    """Steps 1-4 of the module docstring on each row (one set of runs) of the (rows, runs) arrays."""
    rows, runs = similarity.shape
    inside = np.ones(similarity.shape, dtype=bool)
    if outliers == "iqr":
        low, high = _fences(similarity)
        inside = (similarity >= low[:, None]) & (similarity <= high[:, None])  # the fences hold the median
    lo, hi = np.where(inside, similarity, np.inf).min(axis=1), np.where(inside, similarity, -np.inf).max(axis=1)
    centres = _centres(lo, hi, n_intervals)
    nearest = np.abs(similarity[:, :, None] - centres[:, None, :]).argmin(axis=2)  # ties: the first, lower centre
    nearest[~inside] = n_intervals  # a bucket of its own, never fitted
    width = n_intervals + 1
    group = (nearest + width * np.arange(rows)[:, None]).ravel()  # (row, interval), row-major
    # Each group's runs in their own order, as a mean over them in a loop would add them.
    order = np.argsort(group, kind="stable")
    values, sizes = metric.ravel()[order], np.bincount(group, minlength=rows * width)
    kept = _iqr_kept(values, sizes) if outliers == "iqr" else np.ones(values.size, dtype=bool)
    counts = np.bincount(group[order[kept]], minlength=sizes.size)
    means = np.full(sizes.size, np.nan)
    for segments, members in _by_size(values[kept], counts):
        means[segments] = members.mean(axis=1)
    run_kept = np.empty_like(kept)
    run_kept[order] = kept
    run_kept = run_kept.reshape(rows, runs) & inside
    counts, means = (a.reshape(rows, width)[:, :n_intervals] for a in (counts, means))
    return _Intervals(centres, nearest, run_kept, counts, means)


def _corrcoef_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """np.corrcoef(x[i], y[i])[0, 1] for each row i, by np.corrcoef's own steps (its cov, then the scaling). The
    products are BLAS calls, as np.corrcoef's are: equal to the bit with numpy's OpenBLAS, else within rounding."""
    pairs = np.stack([x, y], axis=1)
    pairs -= pairs.mean(axis=2, keepdims=True)
    c = pairs @ pairs.swapaxes(1, 2)
    c *= np.true_divide(1, x.shape[1] - 1)
    sd = np.sqrt(np.diagonal(c, axis1=1, axis2=2))
    return np.clip(c[:, 0, 1] / sd[:, 0] / sd[:, 1], -1, 1)


def _interval_r(centres: np.ndarray, used: np.ndarray, means: np.ndarray, min_intervals: int) -> np.ndarray:
    """Per row, Pearson's r of the used intervals' means on their centres; nan where there are fewer than
    `min_intervals` used intervals or the means are constant (no line, as in `interval_correlation`)."""
    k = used.sum(axis=1)
    r = np.full(k.size, np.nan)
    for size in np.unique(k[k >= min_intervals]):
        rows = np.flatnonzero(k == size)
        x = centres[rows][used[rows]].reshape(-1, size)
        y = means[rows][used[rows]].reshape(-1, size)
        fit = np.ptp(y, axis=1) > 0
        r[rows[fit]] = _corrcoef_rows(x[fit], y[fit])
    return r


def _bootstrap(similarity, metric, n_intervals: int, outliers: str, rule: tuple[int, int], n: int, seed: int):
    """n bootstrap replicates of r (nan where undefined), computed together: the same values as one at a time.
    `rule` = (min_intervals, min_interval_runs)."""
    rng = np.random.default_rng(seed)
    size = similarity.size
    # One call per replicate, as a loop draws them: one (n, size) call would not give the same stream.
    picks = np.array([rng.integers(0, size, size) for _ in range(n)], dtype=np.intp).reshape(n, size)
    boot = np.full(n, np.nan)
    spread = np.flatnonzero(np.ptp(similarity[picks], axis=1) > 0)  # a constant resample has no intervals
    step = max(1, _BLOCK // (size * n_intervals))
    for block in (spread[i : i + step] for i in range(0, spread.size, step)):
        found = _intervals(similarity[picks[block]], metric[picks[block]], n_intervals, outliers)
        boot[block] = _interval_r(found.centres, found.counts >= rule[1], found.means, rule[0])
    return boot


def interval_correlation(
    similarity,
    metric,
    n_intervals: int = 10,
    outliers: str = "iqr",
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    *,
    min_intervals: int = 3,
    min_interval_runs: int = 1,
) -> IntervalFit:
    """Fit interval-mean `metric` on interval-centre `similarity`; see the module docstring for every step.

    Raises ValueError for mismatched or non-finite input, a constant similarity or metric, an unknown outlier rule
    or a rule below its minimum. A fit without enough used intervals, or with constant interval means, returns nan
    for the line and r and says why in `note`.
    """
    similarity = np.asarray(similarity, dtype=np.float64).ravel()
    metric = np.asarray(metric, dtype=np.float64).ravel()
    if similarity.shape != metric.shape:
        raise ValueError(f"similarity and metric differ in length: {similarity.size} vs {metric.size}")
    if not (np.isfinite(similarity).all() and np.isfinite(metric).all()):
        raise ValueError("similarity and metric must be finite (no NaN or inf)")
    if outliers not in OUTLIER_RULES:
        raise ValueError(f"outliers must be one of {OUTLIER_RULES}, got {outliers!r}")
    if n_intervals < 3 or min_intervals < 3 or min_interval_runs < 1:
        raise ValueError(
            f"need n_intervals >= 3, min_intervals >= 3 and min_interval_runs >= 1, got {n_intervals}, "
            f"{min_intervals} and {min_interval_runs}"
        )
    if similarity.size < 3 or np.ptp(similarity) == 0:
        raise ValueError("need at least 3 runs with different similarities to fit a line")
    if np.ptp(metric) == 0:
        raise ValueError("a constant metric: no line can be fitted")
    found = _Intervals(*(a[0] for a in _intervals(similarity[None], metric[None], n_intervals, outliers)))
    used = found.counts >= min_interval_runs
    centres, means, counts = found.centres[used], found.means[used], found.counts[used]
    inside = found.nearest < n_intervals
    interval = np.minimum(found.nearest, n_intervals - 1)  # a similarity outlier's is masked by `inside` below
    excluded = np.full(similarity.size, "", dtype=object)
    excluded[~inside] = SIMILARITY_OUTLIER
    excluded[inside & ~found.kept] = METRIC_OUTLIER
    excluded[found.kept & ~used[interval]] = SPARSE
    assigned = np.where(inside, found.centres[interval], np.nan)

    note, line = "", None
    if centres.size < min_intervals:
        note = (
            f"too few intervals: {centres.size} with at least {min_interval_runs} run"
            f"{'s' if min_interval_runs > 1 else ''}, {min_intervals} needed"
        )
    elif np.ptp(means) == 0:
        note = "constant interval means: no line"
    else:
        line = stats.linregress(centres, means)
    boot = _bootstrap(similarity, metric, n_intervals, outliers, (min_intervals, min_interval_runs), n_bootstrap, seed)
    valid = boot[np.isfinite(boot)]
    tail = (1 - confidence) / 2 * 100
    r_ci = tuple(np.percentile(valid, [tail, 100 - tail])) if valid.size and line is not None else (np.nan, np.nan)
    if line is not None and valid.size < MIN_VALID_SHARE * n_bootstrap:
        note = f"mostly degenerate bootstrap: {valid.size} of {n_bootstrap} replicates valid"
    slope, intercept, r, p_value = (line.slope, line.intercept, line.rvalue, line.pvalue) if line else (math.nan,) * 4
    return IntervalFit(
        slope=float(slope),
        intercept=float(intercept),
        r=float(r),
        p_value=float(p_value),
        r_ci=(float(r_ci[0]), float(r_ci[1])),
        centres=centres,
        means=means,
        counts=counts,
        assigned=assigned,
        excluded=excluded.astype(str),
        boot=boot,
        note=note,
    )


# --- The similarity space (paper Eqs. 3-6) ------------------------------------------------------------------
# Where this departs from the paper's definitions: M_X (Eq. 3) is S of the expected representations, with S a
# metric; here it is linear CKA over the CKA sample (a similarity of the representations of the same images, not of
# their means, and not a metric). Eq. 6 allows a tolerance (eta_F, eps_F) per dataset; here one eta and eps hold
# for every dataset (the sweep varies both). Scratch runs are placed in the space as well, for contrast, though
# Eqs. 3-5 define theta as a fine-tuned theta*.
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
    """Membership in T_X(eta, eps) = {theta : M_X >= 1 - eta and A_X <= eps} (1e-12 of slack for rounding in
    1 - eta, so that eta = 1 - M_X takes that run in)."""
    return (np.asarray(similarity) >= 1 - eta - 1e-12) & (np.asarray(divergence_values) <= eps + 1e-12)


# --- Study tables (polars) ----------------------------------------------------------------------------------
RUN_KEYS = ["run", "dataset", "backbone", "method", "pool", "seed"]
# The runs.parquet metric of each CKA estimator, and its name (repdrift.study's map, read the other way).
ESTIMATORS = {column: name for name, column in SIMILARITY_COLUMN.items()}


def _metric(runs, name: str, layer: int | None = None):
    import polars as pl

    rows = runs.filter(pl.col("metric") == name)
    if layer is not None:
        rows = rows.filter(pl.col("layer") == layer)
    return rows.select(*RUN_KEYS, pl.col("value").alias(name))


def per_run_values(runs, pretrained, measures: list[str], layer: int, k: int):
    """One row per run (its keys): each of `measures` at `layer`, the task score, k-NN accuracy (`knn`) and its ECE
    (`knn_ece`) on the natural domain, and k-NN forgetting: `knn` minus the pre-trained backbone's (`knn_pretrained`).
    """
    import polars as pl

    frame = runs.filter(pl.col("metric").is_in(measures) & (pl.col("layer") == layer)).pivot(
        on="metric", index=RUN_KEYS, values="value"
    )
    function_rows = {"score": "score", knn_metric(k): "knn", knn_ece_metric(k): "knn_ece"}
    functions = runs.filter(pl.col("metric").is_in(list(function_rows))).pivot(on="metric", index="run", values="value")
    functions = functions.rename({old: new for old, new in function_rows.items() if old in functions.columns})
    before = pretrained.filter(pl.col("metric") == knn_metric(k)).select("backbone", "pool", knn_pretrained="value")
    return (
        frame.join(functions, on="run")
        .join(before, on=["backbone", "pool"])
        .with_columns(forgetting=pl.col("knn") - pl.col("knn_pretrained"))
        .sort("run")
    )


def final_layer(runs) -> int:
    """The layer index of the final representation: blocks are 1..L, the final representation L + 1."""
    import polars as pl

    return int(runs.filter(pl.col("metric") == "cka")["layer"].max())


def resolve_layer(runs, layer: int | str) -> int:
    """`final` = the final representation (layer L + 1); a block number must be one of the model's 1..L."""
    last = final_layer(runs)
    if layer == "final":
        return last
    if not isinstance(layer, int) or not 1 <= layer < last:
        raise ConfigError(f"analysis.cka_layer: expected `final` or a block 1..{last - 1}, got {layer!r}")
    return layer


def layer_name(layer: int, last: int) -> str:
    return "final representation" if layer == last else f"block {layer}"


def cka_sample_sizes(runs) -> list[int]:
    """The distinct numbers of images the CKA of these runs was measured on (one per dataset at most)."""
    import polars as pl

    return sorted({int(v) for v in runs.filter(pl.col("metric") == "cka_samples")["value"]})


# The range of each bounded quantity a confidence interval is formed for: intervals are clipped to it.
RANGES = {
    "score": (0.0, 1.0),
    "knn": (0.0, 1.0),
    "knn_ece": (0.0, 1.0),
    "ece": (0.0, 1.0),
    "forgetting": (-1.0, 1.0),  # k-NN accuracy after minus before
    "cka": (0.0, 1.0),
    "cka_debiased": (-1.0, 1.0),  # an inner product of U-centred Gram matrices over their norms
    "procrustes": (0.0, 1.0),
    "pwcca": (0.0, 1.0),
    "rsa": (-1.0, 1.0),
    "rbf_cka": (0.0, 1.0),
    "mutual_knn": (0.0, 1.0),
}


def value_range(name: str) -> tuple[float, float]:
    """The range of a quantity of RANGES (`knn@20` -> knn, `mutual_knn@10` -> mutual_knn); unbounded otherwise."""
    return RANGES.get(name.split("@")[0], (-math.inf, math.inf))


def mean_ci(values, confidence: float, bounds: tuple[float, float] = (-math.inf, math.inf)):
    """(mean, lo, hi, n): the mean over independent runs (seeds) and its t confidence interval, clipped to `bounds`
    (the quantity's range: a t interval of a few seeds near an end of it would leave it); nan bounds below two."""
    values = np.asarray(values, dtype=np.float64)
    n = values.size
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(values.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    half = stats.t.ppf((1 + confidence) / 2, n - 1) * values.std(ddof=1) / math.sqrt(n)
    return mean, max(mean - half, bounds[0]), min(mean + half, bounds[1]), n


def grid_runs(frame, grids, grid: str, key: str = "analysis.similarity_grid"):
    """The rows of `frame` whose run belongs to `grid` (grids.parquet: grid, run); `key` is the config key naming it."""
    import polars as pl

    members = grids.filter(pl.col("grid") == grid).select("run")
    if members.height == 0:
        raise ConfigError(f"{key}: grid {grid!r} has no runs in this study")
    return frame.join(members, on="run", how="semi")


def similarity_space_table(runs, layer: int | str, similarity: str = "cka", kind: str = "loss"):
    """One row per fine-tuned run (every method but Linear) of the whole study with M_X (`similarity` at `layer`)
    and A_X against the pre-trained model's linear probe: the Linear run of the same dataset, backbone and pool (mean
    over its seeds). Runs with no such Linear run are left out (and listed on stdout). The paper's sweep and Fig. 1a
    read the Full and Scratch rows (PAPER_METHODS); rule tradeoff the preserving methods' T_X membership."""
    import polars as pl

    layer = resolve_layer(runs, layer)
    keys = ["dataset", "backbone", "pool"]
    runs_wide = (
        _metric(runs, "score")
        .join(_metric(runs, "test_loss").select("run", "test_loss"), on="run")
        .join(_metric(runs, similarity, layer).select("run", pl.col(similarity).alias("similarity")), on="run")
    )
    probes = (
        runs_wide.filter(pl.col("method") == "linear")
        .group_by(keys)
        .agg(probe_score=pl.col("score").sort().mean(), probe_loss=pl.col("test_loss").sort().mean())
    )
    tuned = runs_wide.filter(pl.col("method") != "linear")
    missing = tuned.join(probes, on=keys, how="anti").select(keys).unique().sort(keys)
    for row in missing.iter_rows(named=True):  # said in the log; those runs have no A_X
        print(f"similarity space: no Linear run (the pre-trained probe) for {row}; its runs are left out")
    space = tuned.join(probes, on=keys)
    pre, ft = ("probe_loss", "test_loss") if kind == "loss" else ("probe_score", "score")
    values = divergence(space[pre].to_numpy(), space[ft].to_numpy(), kind)
    return space.with_columns(
        divergence=pl.Series(values, dtype=pl.Float64),
        layer=pl.lit(layer),
        divergence_kind=pl.lit(kind),
        similarity_metric=pl.lit(similarity),
    )


def _span(top: float, count: int) -> list[float]:
    top = min(max(math.ceil(top * 1e4) / 1e4, 0.0), 1.0)  # rounded up: the last value takes every run in
    return [round(float(v), 4) for v in np.linspace(0.0, top, count)]


def sweep_etas(space, count: int = 11) -> list[float]:
    """`count` etas evenly spaced from 0 to 1 - the smallest similarity, so the sweep spans every run."""
    return _span(1.0 - float(space["similarity"].min()) if space.height else 1.0, count)


def sweep_epss(space, count: int = 11) -> list[float]:
    """`count` epss evenly spaced from 0 to the largest divergence A_X observed."""
    return _span(float(space["divergence"].max()) if space.height else 1.0, count)


def sweep_table(space, etas, epss):
    """Share of runs inside T_X(eta, eps) per dataset, backbone and method, over a grid of (eta, eps): a Scratch
    run (near-zero similarity to a model it never started from) is not pooled with the fine-tunes."""
    import polars as pl

    rows = []
    for (dataset, backbone, method), group in space.group_by("dataset", "backbone", "method", maintain_order=True):
        for eta in etas:
            for eps in epss:
                inside = in_similarity_space(group["similarity"], group["divergence"], eta, eps)
                rows.append(
                    dict(
                        dataset=dataset,
                        backbone=backbone,
                        method=method,
                        eta=eta,
                        eps=eps,
                        runs=group.height,
                        inside=int(inside.sum()),
                        share=float(inside.mean()),
                    )
                )
    schema = {
        "dataset": pl.Utf8,
        "backbone": pl.Utf8,
        "method": pl.Utf8,
        "eta": pl.Float64,
        "eps": pl.Float64,
        "runs": pl.Int64,
        "inside": pl.Int64,
        "share": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema).sort("dataset", "backbone", "method", "eta", "eps")


def metric_domain(metric: str) -> str:
    """Where a metric is measured: k-NN accuracy and its ECE on the natural domain, the rest on the target."""
    return "natural" if metric.startswith((knn_metric(""), knn_ece_metric(""))) else "target"


FIT_SCHEMA = {
    "metric": "Utf8",
    "domain": "Utf8",
    "similarity_metric": "Utf8",
    "layer": "Int64",
    "backbone": "Utf8",
    "runs": "Int64",
    "slope": "Float64",
    "intercept": "Float64",
    "r": "Float64",
    "p_value": "Float64",
    "r_lo": "Float64",
    "r_hi": "Float64",
    "usable": "Boolean",
    "bootstrap": "Int64",
    "bootstrap_valid": "Int64",
    "intervals": "Int64",
    "used_intervals": "Utf8",
    "removed": "Int64",
    "excluded_runs": "Utf8",
    "spearman": "Float64",
    "spearman_p": "Float64",
    "note": "Utf8",
}
POINT_SCHEMA = {
    "metric": "Utf8",
    "layer": "Int64",
    "backbone": "Utf8",
    "run": "Utf8",
    "similarity": "Float64",
    "centre": "Float64",
    "value": "Float64",
    "kept": "Boolean",
    "excluded": "Utf8",
}
BOOT_SCHEMA = {"metric": "Utf8", "layer": "Int64", "backbone": "Utf8", "replicate": "Int64", "r": "Float64"}


def _frame(rows: list[dict], schema: dict[str, str]):
    import polars as pl

    return pl.DataFrame(rows, schema={k: getattr(pl, v) for k, v in schema.items()})


@dataclass(frozen=True)
class FitRule:
    """How the interval fit discretises and what it needs (config `analysis`: n_intervals, outliers,
    min_intervals, min_interval_runs; see the module docstring)."""

    n_intervals: int = 10  # the schema's defaults
    outliers: str = "iqr"
    min_intervals: int = 5
    min_interval_runs: int = 2

    def fit(self, similarity, metric, n_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0):
        return interval_correlation(
            similarity,
            metric,
            self.n_intervals,
            self.outliers,
            n_bootstrap,
            confidence,
            seed,
            min_intervals=self.min_intervals,
            min_interval_runs=self.min_interval_runs,
        )

    def describe(self) -> str:
        removal = (
            "similarity outliers (beyond 1.5 IQR of the backbone's runs) removed, then metric outliers within each "
            "interval"
            if self.outliers == "iqr"
            else "no outlier removal"
        )
        return (
            f"{self.n_intervals} intervals over the similarity range, {removal}; an interval needs "
            f"{self.min_interval_runs} run{'s' if self.min_interval_runs > 1 else ''} and a fit {self.min_intervals} "
            "such intervals"
        )


def _fit_row(fit: IntervalFit, runs, n_bootstrap: int) -> dict:
    """The correlation.csv columns of one fit (beyond its keys): the line, r and its CI, what was used and left out."""
    used = "; ".join(f"{c:.4f} ({n} run{'s' if n > 1 else ''})" for c, n in zip(fit.centres, fit.counts))
    left_out = "; ".join(f"{run}: {why}" for run, why in zip(runs, fit.excluded) if why)
    return dict(
        slope=fit.slope,
        intercept=fit.intercept,
        r=fit.r,
        p_value=fit.p_value,
        r_lo=fit.r_ci[0],
        r_hi=fit.r_ci[1],
        usable=fit.usable,
        bootstrap=n_bootstrap,
        bootstrap_valid=fit.valid,
        intervals=len(fit.centres),
        used_intervals=used,
        removed=fit.removed,
        excluded_runs=left_out,
        note=fit.note,
    )


def correlation_table(
    runs, grids, grid: str, metrics, similarity: str, rule: FitRule, confidence: float = 0.95, seed: int = 0
):
    """The paper's Fig. 5 fit on the similarity grid's runs only (its Sec. 3.3: the 20 ISIC 2018 Full runs of each
    backbone): interval_correlation of `similarity` (every layer) against each metric, per backbone, by `rule`.

    Returns (fits, points, bootstrap): one fit row per metric x layer x backbone, `runs` = the runs of the backbone,
    `intervals` those used, `excluded_runs` each run left out and why, `usable` whether a verdict may read the fit
    (`note` says why not), with the run-level Spearman correlation beside the interval fit; every run's similarity,
    interval centre, metric and why it was left out (what Fig. 5 draws); and the bootstrap replicates of r, for
    comparing fits.
    """
    import polars as pl

    n_bootstrap = 1000
    selected = grid_runs(runs, grids, grid)
    rows, points, replicates = [], [], []
    layers = sorted(set(selected.filter(pl.col("metric") == similarity)["layer"]))
    for metric in metrics:
        for layer in layers:
            values = _metric(selected, metric).select("run", metric)
            joined = _metric(selected, similarity, layer).join(values, on="run")
            for (backbone,), group in joined.sort("backbone", "run").group_by("backbone", maintain_order=True):
                key = dict(metric=metric, layer=layer, backbone=backbone)
                base = dict(key, domain=metric_domain(metric), similarity_metric=similarity, runs=group.height)
                x, y = group[similarity].to_numpy(), group[metric].to_numpy()
                # One bootstrap seed per backbone: its metrics' replicates resample the same runs (paired), another
                # backbone's are independent of them.
                boot_seed = seed + zlib.crc32(backbone.encode())
                try:
                    fit = rule.fit(x, y, n_bootstrap, confidence, boot_seed)
                except ValueError as err:  # too few distinct runs: recorded, not fatal
                    rows.append(dict(base, usable=False, note=str(err)))
                    continue
                rank = stats.spearmanr(x, y)
                fit_row = _fit_row(fit, group["run"], n_bootstrap)
                rows.append(dict(base, **fit_row, spearman=float(rank.statistic), spearman_p=float(rank.pvalue)))
                points += [
                    dict(key, run=run, similarity=float(a), centre=c, value=float(b), kept=not why, excluded=why)
                    for run, a, c, b, why in zip(
                        group["run"], x, [None if np.isnan(c) else float(c) for c in fit.assigned], y, fit.excluded
                    )
                ]
                replicates += [dict(key, replicate=i, r=float(r)) for i, r in enumerate(fit.boot)]
    return _frame(rows, FIT_SCHEMA), _frame(points, POINT_SCHEMA), _frame(replicates, BOOT_SCHEMA)
