"""The study's figures as Altair charts, each saved as self-contained HTML (interactive) and SVG (static).

Each `*_chart` function takes the aggregated tables and returns (chart, numbers); the numbers are what the
report caption states (means per backbone, and so on).
"""

from __future__ import annotations

from pathlib import Path

import altair as alt
import polars as pl

from repdrift.analysis.paper import (
    ESTIMATORS,
    cka_sample_sizes,
    grid_runs,
    layer_name,
    mean_ci,
    metric_domain,
    resolve_layer,
    value_range,
)
from repdrift.study import knn_metric

BACKBONE_COLOURS = alt.Scale(scheme="tableau10")
# Methods: tableau10, then ten more saturated colours (the preserving and PEFT grids together have 11 methods or
# more; a 10-colour scheme repeats, and tableau20's pale halves hide points on white).
METHOD_COLOURS = alt.Scale(
    range=[
        *("#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d"),
        *("#bab0ac", "#1b1b1b", "#7f3c8d", "#11a579", "#3969ac", "#f2b701", "#e73f74", "#80ba5a", "#e68310"),
        *("#008695", "#cf1c90"),
    ]
)


def similarity_axis(similarity: str, layer: int, last: int) -> str:
    """An axis title naming the estimator and the layer, e.g. "CKA (biased), final representation"."""
    return f"CKA ({ESTIMATORS.get(similarity, similarity)}), {layer_name(layer, last)}"


def sample_sizes(runs: pl.DataFrame) -> str:
    """The CKA's n over these runs, e.g. "96" or "80-96" when datasets differ."""
    sizes = cka_sample_sizes(runs)
    return "?" if not sizes else str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"


def similarity_facts(runs: pl.DataFrame, similarity: str, layer: int, last: int, grid: str | None = None) -> dict:
    """What every similarity caption states: estimator, layer, n and the runs used (per backbone)."""
    per_backbone = dict(runs.group_by("backbone").agg(pl.col("run").n_unique()).sort("backbone").iter_rows())
    return {
        "estimator": ESTIMATORS.get(similarity, similarity),
        "layer": layer_name(layer, last),
        "n": sample_sizes(runs),
        "grid": grid,
        "runs": per_backbone,
    }


def grid_view(runs: pl.DataFrame, grids: pl.DataFrame, grid: str, similarity: str, layer: int | str):
    """The similarity grid's runs, the resolved layer, the final layer's index and the caption facts."""
    last = resolve_layer(runs, "final")
    layer = resolve_layer(runs, layer)
    selected = grid_runs(runs, grids, grid)
    return selected, layer, last, similarity_facts(selected, similarity, layer, last, grid)


def cka_trajectory_chart(trajectories: pl.DataFrame, similarity: str, layer: int, last: int, samples: str):
    """Fig. 4a: similarity to the pre-trained model and test score per epoch, mean and spread across seeds. The
    similarity panel shows `similarity` (the static SVG) or, in the interactive chart, any measure the trajectories
    hold, picked from a menu."""
    measures = [similarity] + sorted(
        set(trajectories.filter(pl.col("layer").is_not_null())["metric"].unique()) - {similarity}
    )
    data = trajectories.filter(
        ((pl.col("metric").is_in(measures)) & (pl.col("layer") == layer)) | (pl.col("metric") == "score")
    )
    summary = (
        data.group_by("backbone", "metric", "epoch")
        .agg(mean=pl.col("value").mean(), sd=pl.col("value").std().fill_null(0.0), seeds=pl.len())
        .with_columns(
            lo=pl.col("mean") - pl.col("sd"),
            hi=pl.col("mean") + pl.col("sd"),
            panel=pl.when(pl.col("metric") == "score").then(pl.lit("score")).otherwise(pl.lit("similarity")),
        )
        .sort("backbone", "metric", "epoch")
    )
    measure = alt.param(
        name="measure", value=similarity, bind=alt.binding_select(options=measures, name="similarity measure: ")
    )
    base = alt.Chart(summary).encode(
        x=alt.X("epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1)),
        color=alt.Color("backbone:N", scale=BACKBONE_COLOURS),
    )
    band = base.mark_area(opacity=0.2).encode(y="lo:Q", y2="hi:Q")
    line = base.mark_line(point=True).encode(
        y=alt.Y("mean:Q", title=None, scale=alt.Scale(zero=False)),
        tooltip=[
            "backbone",
            "metric",
            "epoch",
            alt.Tooltip("mean:Q", format=".3f"),
            alt.Tooltip("sd:Q", format=".3f"),
            "seeds",
        ],
    )
    where = f"{layer_name(layer, last)}, n = {samples}"
    chart = (
        (band + line)
        .transform_filter("datum.panel == 'score' || datum.metric == measure")
        .properties(width=300, height=220)
        .facet(
            column=alt.Column(
                "panel:N",
                title=None,
                sort=["similarity", "score"],
                header=alt.Header(
                    labelExpr="datum.value == 'score' ? 'test score' : (measure == 'cka' ? 'CKA (biased)' : "
                    f"measure == 'cka_debiased' ? 'CKA (debiased)' : measure) + ', {where}'"
                ),
            ),
        )
        .resolve_scale(y="independent")
        .add_params(measure)
    )
    final_epoch = summary["epoch"].max()
    final = summary.filter((pl.col("metric") == similarity) & (pl.col("epoch") == final_epoch))
    return chart, {"epoch": final_epoch, "final_cka": dict(final.select("backbone", "mean").iter_rows())}


def cka_vs_score_chart(runs: pl.DataFrame, similarity: str, layer: int, last: int):
    """Fig. 4b: final similarity against the test score, one point per run of the similarity grid."""
    cka = runs.filter((pl.col("metric") == similarity) & (pl.col("layer") == layer)).select("run", cka="value")
    score = runs.filter(pl.col("metric") == "score").select(
        "run", "dataset", "backbone", "method", "pool", "seed", score="value"
    )
    data = score.join(cka, on="run")
    chart = (
        alt.Chart(data)
        .mark_point(filled=True, size=60, opacity=0.8)
        .encode(
            x=alt.X("cka:Q", title=similarity_axis(similarity, layer, last), scale=alt.Scale(zero=False)),
            y=alt.Y("score:Q", title="test accuracy / mAP", scale=alt.Scale(zero=False)),
            color=alt.Color("backbone:N", scale=BACKBONE_COLOURS),
            tooltip=["run", alt.Tooltip("cka:Q", format=".3f"), alt.Tooltip("score:Q", format=".3f")],
        )
        .properties(width=300, height=240)
    )
    means = data.group_by("backbone").agg(pl.col("cka").mean(), pl.col("score").mean(), runs=pl.len()).sort("backbone")
    return chart, {"means": means.to_dicts()}


def knn_forgetting_chart(runs: pl.DataFrame, pretrained: pl.DataFrame, k: int, confidence: float):
    """Fig. 1a: k-NN accuracy on the natural domain of the pre-trained models and of the similarity grid's
    fine-tuned runs (mean over seeds with a t confidence interval; none for one run)."""
    metric = knn_metric(k)
    rows = []
    for (backbone, pool), group in runs.filter(pl.col("metric") == metric).group_by("backbone", "pool"):
        mean, _, hi, n = mean_ci(group["value"], confidence, value_range(metric))
        rows.append(dict(backbone=backbone, pool=pool, accuracy=mean, runs=n, half=hi - mean if n > 1 else 0.0))
    schema = {"backbone": pl.Utf8, "pool": pl.Utf8, "accuracy": pl.Float64, "runs": pl.UInt32, "half": pl.Float64}
    tuned = pl.DataFrame(rows, schema=schema).with_columns(model=pl.lit("fine-tuned"))
    before = (
        pretrained.filter(pl.col("metric") == metric)
        .join(tuned.select("backbone", "pool"), on=["backbone", "pool"])
        .select(
            "backbone",
            "pool",
            accuracy="value",
            runs=pl.lit(1, pl.UInt32),
            model=pl.lit("pre-trained"),
            half=pl.lit(0.0),
        )
    )
    data = pl.concat([before, tuned.select(before.columns)]).with_columns(
        lo=pl.col("accuracy") - pl.col("half"), hi=pl.col("accuracy") + pl.col("half")
    )
    base = alt.Chart(data).encode(x=alt.X("model:N", title=None, sort=["pre-trained", "fine-tuned"]))
    y_title = f"k-NN accuracy (k={k}), natural domain"
    bars = base.mark_bar().encode(
        y=alt.Y("accuracy:Q", title=y_title, scale=alt.Scale(domain=[0, 1])),
        color=alt.Color(
            "model:N", scale=alt.Scale(domain=["pre-trained", "fine-tuned"], range=["#999999", "#4c78a8"]), legend=None
        ),
        tooltip=["backbone", "pool", "model", alt.Tooltip("accuracy:Q", format=".3f"), "runs"],
    )
    whiskers = base.mark_errorbar().encode(y=alt.Y("lo:Q", title=y_title), y2="hi:Q")
    chart = (bars + whiskers).properties(width=120, height=200).facet(column=alt.Column("backbone:N"))
    drop = (
        tuned.join(before.select("backbone", "pool", pre="accuracy"), on=["backbone", "pool"])
        .select("backbone", "pool", "pre", full="accuracy", half="half", runs="runs")
        .sort("backbone")
    )
    return chart, {"k": k, "confidence": confidence, "full_vs_pretrained": drop.to_dicts()}


def save_chart(chart: alt.TopLevelMixin, html: str | Path, svg: str | Path) -> None:
    """Self-contained HTML (the Vega libraries inline, so the report opens offline) and a static SVG."""
    chart.save(str(html), inline=True)
    chart.save(str(svg))


def similarity_space_chart(space: pl.DataFrame, eta: float, eps: float, x_title: str = "CKA to pre-trained"):
    """Test score against M_X per backbone and dataset, the runs inside T_X(eta, eps) filled, the region
    M_X >= 1 - eta shaded: every Full and Scratch run of the study that has a Linear partner."""
    data = space.with_columns(
        inside=(pl.col("similarity") >= 1 - eta) & (pl.col("divergence") <= eps),
    )
    base = alt.Chart(data)
    # One rectangle per panel: the data aggregated to a single row, drawn at constant x.
    region = (
        base.transform_aggregate(runs="count()")
        .mark_rect(opacity=0.12, color="green")
        .encode(x=alt.datum(1 - eta), x2=alt.datum(1.0))
    )
    points = base.mark_point(size=60).encode(
        x=alt.X("similarity:Q", title=f"M_X: {x_title}", scale=alt.Scale(zero=False)),
        y=alt.Y("score:Q", title="test accuracy / mAP", scale=alt.Scale(zero=False)),
        color=alt.Color("backbone:N", scale=BACKBONE_COLOURS),
        shape=alt.Shape("method:N"),
        fill=alt.condition("datum.inside", alt.Color("backbone:N", scale=BACKBONE_COLOURS), alt.value("white")),
        tooltip=[
            "run",
            alt.Tooltip("similarity:Q", format=".4f"),
            alt.Tooltip("divergence:Q", format=".3f"),
            alt.Tooltip("score:Q", format=".3f"),
            "inside:N",
        ],
    )
    chart = alt.layer(region, points).properties(width=220, height=200).facet(column="dataset:N", row="backbone:N")
    share = (
        data.group_by("dataset", "backbone")
        .agg(inside=pl.col("inside").mean(), runs=pl.len())
        .sort("dataset", "backbone")
    )
    observed = (data["similarity"].min(), data["similarity"].max())
    return chart, {"eta": eta, "eps": eps, "share_inside": share.to_dicts(), "range": observed}


def cka_heatmap_chart(trajectories: pl.DataFrame, similarity: str, last: int):
    """Similarity to the pre-trained model at every layer and epoch (mean over seeds), one panel per backbone."""
    data = (
        trajectories.filter(pl.col("metric") == similarity)
        .group_by("backbone", "epoch", "layer")
        .agg(cka=pl.col("value").mean())
        .with_columns(
            where=pl.when(pl.col("layer") == last)
            .then(pl.lit("final"))
            .otherwise(pl.format("block {}", pl.col("layer")))
        )
    )
    order = [f"block {layer}" for layer in range(1, last)] + ["final"]
    chart = (
        alt.Chart(data)
        .mark_rect()
        .encode(
            x=alt.X("epoch:O"),
            y=alt.Y("where:N", title="layer", sort=list(reversed(order))),
            color=alt.Color(
                "cka:Q", title=f"CKA ({ESTIMATORS.get(similarity, similarity)})", scale=alt.Scale(scheme="viridis")
            ),
            tooltip=["backbone", "epoch", "where", alt.Tooltip("cka:Q", format=".4f")],
        )
        .properties(width=200, height=160)
        .facet(column="backbone:N")
    )
    lowest = data.sort("cka").group_by("backbone", maintain_order=True).first().sort("backbone")
    return chart, {"lowest": lowest.to_dicts()}


def cka_distribution_chart(runs: pl.DataFrame, similarity: str, layer: int, last: int):
    """Fig. 1b: final similarity across the similarity grid's seeds, per backbone: the spread fine-tuning leaves."""
    data = runs.filter((pl.col("metric") == similarity) & (pl.col("layer") == layer))
    chart = (
        alt.Chart(data)
        .mark_boxplot(extent="min-max", size=30)
        .encode(
            x=alt.X("backbone:N"),
            y=alt.Y("value:Q", title="final " + similarity_axis(similarity, layer, last), scale=alt.Scale(zero=False)),
            color=alt.Color("backbone:N", scale=BACKBONE_COLOURS, legend=None),
        )
        .properties(width=240, height=220)
    )
    stats = (
        data.group_by("backbone")
        .agg(mean=pl.col("value").mean(), sd=pl.col("value").std(), seeds=pl.len())
        .sort("backbone")
    )
    return chart, {"per_backbone": stats.to_dicts()}


def correlation_chart(
    fits: pl.DataFrame, points: pl.DataFrame, similarity: str, layer: int, last: int, metrics: list[str]
):
    """Fig. 5: each run of the similarity grid at its discretised similarity (black; hollow = not used: an outlier,
    or in an interval of too few runs), the interval means the line is fitted to (red) and the fitted line, per
    backbone (rows) and metric (columns)."""
    fits = fits.filter(pl.col("layer") == layer)
    # A similarity outlier has no interval: it is drawn at its own similarity.
    points = points.filter(pl.col("layer") == layer)
    points = points.with_columns(centre=pl.col("centre").fill_null(pl.col("similarity")))
    x_title = f"{similarity_axis(similarity, layer, last)}, interval centre"
    rows = []
    for backbone in sorted(points["backbone"].unique()):
        panels = []
        for metric in metrics:
            mine = points.filter((pl.col("backbone") == backbone) & (pl.col("metric") == metric))
            means = mine.filter("kept").group_by("centre").agg(value=pl.col("value").mean(), runs=pl.len())
            here = (pl.col("backbone") == backbone) & (pl.col("metric") == metric)
            fit = fits.filter(here & pl.col("r").is_not_null())
            x = alt.X("centre:Q", title=x_title, scale=alt.Scale(zero=False))
            layers = [
                alt.Chart(mine)
                .mark_point(color="black", opacity=0.6, size=30)
                .encode(
                    x=x,
                    y=alt.Y("value:Q", title=f"{metric} ({metric_domain(metric)})", scale=alt.Scale(zero=False)),
                    fill=alt.condition("datum.kept", alt.value("black"), alt.value("white")),
                    tooltip=[
                        "run",
                        alt.Tooltip("similarity:Q", format=".4f"),
                        alt.Tooltip("value:Q", format=".3f"),
                        "excluded",
                    ],
                )
            ]
            title = f"{backbone}: {metric}"
            if fit.height:
                row = fit.row(0, named=True)
                used = mine.filter("kept")["centre"]  # the line spans the intervals it was fitted on
                ends = pl.DataFrame({"centre": [used.min(), used.max()]}).with_columns(
                    value=row["intercept"] + row["slope"] * pl.col("centre")
                )
                layers += [
                    alt.Chart(means)
                    .mark_point(color="red", filled=True, size=70)
                    .encode(x=x, y="value:Q", tooltip=[alt.Tooltip("value:Q", format=".3f"), "runs"]),
                    alt.Chart(ends).mark_line(color="red").encode(x=x, y="value:Q"),
                ]
                title += f" (r = {row['r']:+.2f}{'' if row['usable'] else ', not usable'})"
            panels.append(alt.layer(*layers).properties(width=200, height=160, title=title))
        rows.append(alt.hconcat(*panels))
    chart = alt.vconcat(*rows)
    numbers = fits.select(
        "metric", "backbone", "runs", "r", "r_lo", "r_hi", "p_value", "intervals", "removed", "spearman",
        "bootstrap", "bootstrap_valid", pl.col("note").fill_null(""),
    ).to_dicts()  # fmt: skip
    return chart, {"fits": numbers}


def render(name: str, chart, numbers: dict, html, svg, caption) -> None:
    """Save a figure and write its caption with the numbers it shows."""
    from repdrift.report.captions import write_caption

    save_chart(chart, html, svg)
    write_caption(name, numbers, caption)
    print(numbers)
