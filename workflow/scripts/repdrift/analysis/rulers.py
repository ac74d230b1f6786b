"""Does the answer depend on the ruler? The similarity measures side by side on the similarity grid's runs.

`agreement_table`: per backbone, Spearman's rank correlation between every pair of measures across the grid's runs
(final model, the configured layer), with a percentile bootstrap CI (runs resampled with replacement).

`ruler_table`: per backbone, measure and function (k-NN forgetting = the run's k-NN accuracy on the natural domain
minus its pre-trained backbone's, natural-domain ECE, task score): Spearman's r with its bootstrap CI, and the
paper's interval fit (repdrift.analysis.paper.interval_correlation, Sec. 3.3) with its CI; measures ranked by |Spearman
r|.

`paper_conclusion`: per measure, a simpler form of the paper's correlation conclusion (claim (d) of the findings page
judges it on CKA with the interval fit, k-NN and ECE, and every backbone pair): does forgetting track similarity more
for the supervised backbone than for the self-supervised one? The supervised relation counts in its expected
direction (r > 0: more similar, less forgetting), the other by |r|: the bootstrap CI of r_supervised - |r_ssl| (each
backbone's runs resampled on their own, replicates paired by index) above 0 agrees, below 0 disagrees, otherwise
(or with fewer than 10 valid replicates) inconclusive. With several backbones of a paradigm, the first in the config
is compared. Torch-free.
"""

from __future__ import annotations

import math
import zlib

import altair as alt
import numpy as np
import polars as pl

from repdrift.analysis.paper import FitRule
from repdrift.metrics._arrays import average_ranks

FUNCTIONS = ("forgetting", "knn_ece", "score")
CKA_MEASURES = ("cka", "cka_debiased")


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair (replicates x runs), nan where a row is constant."""
    rx, ry = average_ranks(x), average_ranks(y)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    denom = np.sqrt((rx**2).sum(1) * (ry**2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (rx * ry).sum(1) / denom, np.nan)


def spearman_ci(x, y, n_bootstrap: int, confidence: float, seed: int) -> tuple[float, float, float, np.ndarray]:
    """Spearman's rho of x and y, its percentile bootstrap CI and the replicates (nan where undefined)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    rho = float(_spearman_rows(x[None], y[None])[0])
    draws = np.random.default_rng(seed).integers(0, x.size, size=(n_bootstrap, x.size))
    boot = _spearman_rows(x[draws], y[draws])
    valid = boot[np.isfinite(boot)]
    if valid.size == 0:
        return rho, math.nan, math.nan, boot
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(valid, [alpha, 1 - alpha])
    return rho, float(lo), float(hi), boot


def measure_names(runs: pl.DataFrame) -> list[str]:
    """The similarity measures runs.parquet holds per layer: the CKA estimators first, then the others."""
    layered = runs.filter(pl.col("layer").is_not_null())["metric"].unique().to_list()
    others = sorted(m for m in layered if m not in CKA_MEASURES)
    return [m for m in CKA_MEASURES if m in layered] + others


def agreement_table(wide: pl.DataFrame, measures: list[str], n_bootstrap: int, confidence: float) -> pl.DataFrame:
    rows = []
    for backbone in sorted(wide["backbone"].unique()):
        part = wide.filter(pl.col("backbone") == backbone)
        seed = zlib.crc32(backbone.encode())  # the same resamples for every pair of a backbone
        for i, a in enumerate(measures):
            for b in measures[i + 1 :]:
                x, y = part[a].to_numpy(), part[b].to_numpy()
                keep = np.isfinite(x) & np.isfinite(y)  # a NaN measure (e.g. a degenerate layer) leaves its run out
                rho, lo, hi, _ = spearman_ci(x[keep], y[keep], n_bootstrap, confidence, seed)
                rows.append(dict(backbone=backbone, a=a, b=b, runs=int(keep.sum()), spearman=rho, lo=lo, hi=hi))
    schema = {
        "backbone": pl.Utf8,
        "a": pl.Utf8,
        "b": pl.Utf8,
        "runs": pl.Int64,
        "spearman": pl.Float64,
        "lo": pl.Float64,
        "hi": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema)


def ruler_table(wide, measures, rule: FitRule, n_bootstrap: int, confidence: float):
    """The ruler table of the module docstring and, per backbone, measure and function, the Spearman replicates."""
    rows, replicates = [], {}
    for backbone in sorted(wide["backbone"].unique()):
        part = wide.filter(pl.col("backbone") == backbone)
        seed = zlib.crc32(backbone.encode())
        for measure in measures:
            for function in FUNCTIONS:
                x, y = part[measure].to_numpy(), part[function].to_numpy()
                keep = np.isfinite(x) & np.isfinite(y)
                rho, lo, hi, boot = spearman_ci(x[keep], y[keep], n_bootstrap, confidence, seed)
                replicates[backbone, measure, function] = boot
                r = r_lo = r_hi = math.nan
                try:
                    fit = rule.fit(x[keep], y[keep], n_bootstrap, confidence, seed)
                    if fit.usable:  # else too few intervals or a mostly degenerate bootstrap: no verdict reads it
                        r, r_lo, r_hi = fit.r, *fit.r_ci
                except ValueError:  # too few distinct values (e.g. a NaN measure)
                    pass
                rows.append(
                    dict(
                        backbone=backbone,
                        measure=measure,
                        function=function,
                        runs=int(keep.sum()),
                        spearman=rho,
                        spearman_lo=lo,
                        spearman_hi=hi,
                        interval_r=r,
                        interval_lo=r_lo,
                        interval_hi=r_hi,
                    )
                )
    # NaN (an undefined correlation) gets no rank: polars would rank it first.
    table = pl.DataFrame(rows).with_columns(
        rank=pl.col("spearman")
        .fill_nan(None)
        .abs()
        .rank("min", descending=True)
        .over("backbone", "function")
        .cast(pl.Int64)
    )
    return table.sort("backbone", "function", "rank"), replicates


def paper_conclusion(replicates: dict, measures, paradigms: dict[str, str], confidence: float) -> pl.DataFrame:
    """Per measure: the supervised backbone's Spearman r with forgetting, counted in its expected direction (r > 0:
    more similar, less forgetting; a wrong-signed r is never the stronger), minus the self-supervised one's |r|; the
    bootstrap CI of the difference and the verdict (as claim (d) of repdrift.analysis.findings)."""
    supervised = [b for b, p in paradigms.items() if p == "supervised"]
    ssl = [b for b, p in paradigms.items() if p == "self_supervised"]
    rows = []
    for measure in measures:
        row = dict(measure=measure, difference=math.nan, lo=math.nan, hi=math.nan, verdict="inconclusive")
        pairs = [
            (a, b)
            for a in supervised
            for b in ssl
            if (a, measure, "forgetting") in replicates and (b, measure, "forgetting") in replicates
        ]
        if pairs:
            a, b = pairs[0]
            diff = replicates[a, measure, "forgetting"] - np.abs(replicates[b, measure, "forgetting"])
            diff = diff[np.isfinite(diff)]
            if diff.size >= 10:
                alpha = (1 - confidence) / 2
                lo, hi = np.quantile(diff, [alpha, 1 - alpha])
                verdict = "agrees" if lo > 0 else "disagrees" if hi < 0 else "inconclusive"
                row.update(
                    difference=float(np.median(diff)),
                    lo=float(lo),
                    hi=float(hi),
                    verdict=verdict,
                    supervised=a,
                    self_supervised=b,
                )
        rows.append(row)
    return pl.DataFrame(rows)


def agreement_chart(agreement: pl.DataFrame):
    both = pl.concat([agreement, agreement.rename({"a": "b", "b": "a"}).select(agreement.columns)])
    base = alt.Chart(both).encode(x=alt.X("a:N", title=None), y=alt.Y("b:N", title=None))
    cells = base.mark_rect().encode(
        color=alt.Color("spearman:Q", scale=alt.Scale(scheme="redblue", domain=[-1, 1]), title="Spearman"),
        tooltip=[
            "backbone",
            "a",
            "b",
            "runs",
            alt.Tooltip("spearman:Q", format=".2f"),
            alt.Tooltip("lo:Q", format=".2f"),
            alt.Tooltip("hi:Q", format=".2f"),
        ],
    )
    text = base.mark_text(fontSize=9).encode(text=alt.Text("spearman:Q", format=".2f"))
    return alt.layer(cells, text).properties(width=200, height=200).facet(column=alt.Column("backbone:N"))


def ruler_chart(table: pl.DataFrame):
    """Per measure: the bar and whisker are Spearman's r and its CI; the black diamond and thin black line below
    them, the paper's interval-fit r and its CI (absent where no line could be fitted)."""
    present = set(table["measure"])
    order = [m for m in CKA_MEASURES if m in present] + sorted(present - set(CKA_MEASURES))  # as measure_names
    base = alt.Chart(table).encode(y=alt.Y("measure:N", title=None, sort=order))
    colour = alt.Color("measure:N", legend=None)
    scale = alt.Scale(domain=[-1, 1])
    bars = base.mark_bar(height={"band": 0.5}, yOffset=-3).encode(
        x=alt.X("spearman:Q", title="r (bars Spearman, \u25c6 fit)", scale=scale), color=colour
    )
    whiskers = base.mark_rule(yOffset=-3).encode(x="spearman_lo:Q", x2="spearman_hi:Q", color=colour)
    fitted = base.transform_filter("isValid(datum.interval_r)")
    diamonds = fitted.mark_point(shape="diamond", filled=True, color="black", size=30, yOffset=5).encode(
        x="interval_r:Q", tooltip=["measure", "interval_r", "interval_lo", "interval_hi", "runs"]
    )
    fit_ci = fitted.mark_rule(color="black", strokeWidth=0.8, yOffset=5).encode(x="interval_lo:Q", x2="interval_hi:Q")
    return (
        (bars + whiskers + fit_ci + diamonds)
        .properties(width=160, height=140)
        .facet(column=alt.Column("function:N"), row=alt.Row("backbone:N"))
    )


def captions(agreement: pl.DataFrame, table: pl.DataFrame, conclusion: pl.DataFrame, facts: dict) -> tuple[str, str]:
    pairs = "; ".join(
        f"{r['backbone']} {r['a']} vs {r['b']} {r['spearman']:+.2f} [{r['lo']:+.2f}, {r['hi']:+.2f}]"
        for r in agreement.iter_rows(named=True)
    )
    first = (
        f"Agreement of the similarity measures: Spearman's rank correlation between every pair across the similarity "
        f"grid `{facts['grid']}`'s runs (final model, {facts['layer']}, n = {facts['n']} test images), per backbone, "
        f"with {facts['confidence']:.0%} bootstrap intervals. {facts['settings']} {pairs}."
    )
    best = "; ".join(
        f"{r['backbone']} {r['function']}: {r['measure']} {r['spearman']:+.2f} [{r['spearman_lo']:+.2f}, "
        f"{r['spearman_hi']:+.2f}]"
        for r in table.filter(pl.col("rank") == 1).iter_rows(named=True)
    )
    verdicts = "; ".join(f"{r['measure']}: {r['verdict']}" for r in conclusion.iter_rows(named=True))
    second = (
        "Which ruler predicts function: Spearman r of each measure with k-NN forgetting, natural-domain ECE and the "
        "task score across the similarity grid's runs, per backbone (bars), and the paper's interval-fit r (black "
        f"diamonds; none where no line could be fitted), each with its {facts['confidence']:.0%} bootstrap interval "
        f"(results/analysis/rulers.csv holds both). {facts['settings']} Strongest Spearman per backbone and "
        f"function: {best}. "
        f"The paper's conclusion (forgetting tracks similarity more for the supervised ViT than for DINOv2) per "
        f"measure: {verdicts}."
    )
    return first, second
