"""The study's figures as Altair charts, each saved as self-contained HTML (interactive) and SVG (static).

Each `*_chart` function takes the aggregated tables and returns (chart, numbers); the numbers are what the
report caption states (means per backbone, and so on).
"""

from __future__ import annotations

from pathlib import Path

import altair as alt
import polars as pl

BACKBONE_COLOURS = alt.Scale(scheme="tableau10")


def _runs_in(runs: pl.DataFrame, grids: pl.DataFrame, grid: str | None) -> pl.DataFrame:
    if grid is None:
        return runs
    members = grids.filter(pl.col("grid") == grid).select("run")
    return runs.join(members, on="run", how="semi")


def last_layer(frame: pl.DataFrame) -> int:
    return int(frame.filter(pl.col("metric") == "cka")["layer"].max())


def cka_trajectory_chart(trajectories: pl.DataFrame, grids: pl.DataFrame, grid: str | None):
    """Last-layer CKA to the pre-trained model and test score per epoch: mean and spread across seeds."""
    data = _runs_in(trajectories, grids, grid)
    layer = last_layer(data)
    data = data.filter(((pl.col("metric") == "cka") & (pl.col("layer") == layer)) | (pl.col("metric") == "score"))
    summary = (
        data.group_by("backbone", "metric", "epoch")
        .agg(mean=pl.col("value").mean(), sd=pl.col("value").std().fill_null(0.0), seeds=pl.len())
        .with_columns(lo=pl.col("mean") - pl.col("sd"), hi=pl.col("mean") + pl.col("sd"))
        .sort("backbone", "metric", "epoch")
    )
    base = alt.Chart(summary).encode(
        x=alt.X("epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1)),
        color=alt.Color("backbone:N", scale=BACKBONE_COLOURS),
    )
    band = base.mark_area(opacity=0.2).encode(y="lo:Q", y2="hi:Q")
    line = base.mark_line(point=True).encode(
        y=alt.Y("mean:Q", title=None, scale=alt.Scale(zero=False)),
        tooltip=["backbone", "epoch", alt.Tooltip("mean:Q", format=".3f"), alt.Tooltip("sd:Q", format=".3f"), "seeds"],
    )
    chart = (band + line).properties(width=300, height=220).facet(
        column=alt.Column("metric:N", title=None, header=alt.Header(labelExpr="datum.value == 'cka' ? "
                                                                      f"'CKA, block {layer}' : 'test score'")),
    ).resolve_scale(y="independent")
    final_epoch = summary["epoch"].max()
    numbers = {
        row["backbone"]: row["mean"]
        for row in summary.filter((pl.col("metric") == "cka") & (pl.col("epoch") == final_epoch)).iter_rows(named=True)
    }
    return chart, {"layer": layer, "epoch": final_epoch, "final_cka": numbers}


def cka_vs_score_chart(runs: pl.DataFrame):
    """Final last-layer CKA against the test score, one point per run, a panel per dataset."""
    layer = last_layer(runs)
    cka = runs.filter((pl.col("metric") == "cka") & (pl.col("layer") == layer)).select("run", cka="value")
    score = runs.filter(pl.col("metric") == "score").select(
        "run", "dataset", "backbone", "method", "pool", "seed", score="value"
    )
    data = score.join(cka, on="run")
    chart = (
        alt.Chart(data)
        .mark_point(filled=True, size=60, opacity=0.8)
        .encode(
            x=alt.X("cka:Q", title=f"CKA to pre-trained (block {layer})", scale=alt.Scale(zero=False)),
            y=alt.Y("score:Q", title="test accuracy / mAP", scale=alt.Scale(zero=False)),
            color=alt.Color("backbone:N", scale=BACKBONE_COLOURS),
            shape=alt.Shape("method:N"),
            tooltip=["run", alt.Tooltip("cka:Q", format=".3f"), alt.Tooltip("score:Q", format=".3f")],
        )
        .properties(width=220, height=200)
        .facet(column=alt.Column("dataset:N"))
    )
    means = data.group_by("backbone", "method").agg(pl.col("cka").mean(), pl.col("score").mean()).sort("backbone")
    return chart, {"layer": layer, "means": means.to_dicts()}


def knn_forgetting_chart(runs: pl.DataFrame, pretrained: pl.DataFrame, k: int):
    """k-NN accuracy on the natural domain of each fine-tuned model against its pre-trained model."""
    metric = f"knn@{k}"
    tuned = (
        runs.filter(pl.col("metric") == metric)
        .group_by("backbone", "method", "pool")
        .agg(accuracy=pl.col("value").mean(), runs=pl.len())
        .with_columns(model=pl.concat_str("method", pl.lit("-"), "pool"))
    )
    before = pretrained.filter(pl.col("metric") == metric).select(
        "backbone", "pool", accuracy="value", model=pl.concat_str(pl.lit("pre-trained-"), "pool"), runs=pl.lit(1)
    )
    data = pl.concat([before.with_columns(pl.col("runs").cast(pl.UInt32)), tuned.select(before.columns)])
    chart = (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("model:N", title=None, sort=sorted(data["model"].unique())),
            y=alt.Y("accuracy:Q", title=f"k-NN accuracy (k={k})", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("backbone:N", scale=BACKBONE_COLOURS, legend=None),
            column=alt.Column("backbone:N"),
            tooltip=["backbone", "model", alt.Tooltip("accuracy:Q", format=".3f"), "runs"],
        )
        .properties(width=160, height=200)
    )
    drop = (
        tuned.join(before.select("backbone", "pool", pre="accuracy"), on=["backbone", "pool"])
        .filter(pl.col("method") == "full")
        .group_by("backbone")
        .agg(pre=pl.col("pre").mean(), full=pl.col("accuracy").mean())
        .sort("backbone")
    )
    return chart, {"k": k, "full_vs_pretrained": drop.to_dicts()}


def save_chart(chart: alt.TopLevelMixin, html: str | Path, svg: str | Path) -> None:
    """Self-contained HTML (the Vega libraries inline, so the report opens offline) and a static SVG."""
    chart.save(str(html), inline=True)
    chart.save(str(svg))


def similarity_space_chart(space: pl.DataFrame, eta: float, eps: float):
    """Test score against M_X per backbone, the runs inside T_X(eta, eps) filled, the region M_X >= 1 - eta shaded."""
    data = space.with_columns(
        inside=(pl.col("similarity") >= 1 - eta) & (pl.col("divergence") <= eps),
    )
    base = alt.Chart(data)
    # One rectangle per panel: the data aggregated to a single row, drawn at constant x.
    region = base.transform_aggregate(runs="count()").mark_rect(opacity=0.12, color="green").encode(
        x=alt.datum(1 - eta), x2=alt.datum(1.0)
    )
    points = base.mark_point(size=60).encode(
        x=alt.X("similarity:Q", title="M_X: CKA to pre-trained", scale=alt.Scale(zero=False)),
        y=alt.Y("score:Q", title="test accuracy / mAP", scale=alt.Scale(zero=False)),
        color=alt.Color("backbone:N", scale=BACKBONE_COLOURS),
        fill=alt.condition("datum.inside", alt.Color("backbone:N", scale=BACKBONE_COLOURS), alt.value("white")),
        tooltip=["run", alt.Tooltip("similarity:Q", format=".4f"), alt.Tooltip("divergence:Q", format=".3f"),
                 alt.Tooltip("score:Q", format=".3f"), "inside:N"],
    )
    chart = alt.layer(region, points).properties(width=220, height=200).facet(column="dataset:N", row="backbone:N")
    share = data.group_by("dataset", "backbone").agg(inside=pl.col("inside").mean(), runs=pl.len()).sort("dataset", "backbone")
    return chart, {"eta": eta, "eps": eps, "share_inside": share.to_dicts()}


def cka_heatmap_chart(trajectories: pl.DataFrame, grids: pl.DataFrame, grid: str | None):
    """Layer-wise CKA to the pre-trained model per epoch (mean over seeds), one panel per backbone."""
    data = (
        _runs_in(trajectories, grids, grid)
        .filter(pl.col("metric") == "cka")
        .group_by("backbone", "epoch", "layer")
        .agg(cka=pl.col("value").mean())
    )
    chart = (
        alt.Chart(data)
        .mark_rect()
        .encode(
            x=alt.X("epoch:O"),
            y=alt.Y("layer:O", title="block", sort="descending"),
            color=alt.Color("cka:Q", title="CKA", scale=alt.Scale(scheme="viridis")),
            tooltip=["backbone", "epoch", "layer", alt.Tooltip("cka:Q", format=".4f")],
        )
        .properties(width=200, height=160)
        .facet(column="backbone:N")
    )
    lowest = data.sort("cka").group_by("backbone", maintain_order=True).first().sort("backbone")
    return chart, {"lowest": lowest.to_dicts()}


def cka_distribution_chart(runs: pl.DataFrame, grids: pl.DataFrame, grid: str | None, layer: int):
    """Final CKA (block `layer`) across seeds, per backbone: the spread fine-tuning leaves."""
    data = _runs_in(runs, grids, grid).filter((pl.col("metric") == "cka") & (pl.col("layer") == layer))
    chart = (
        alt.Chart(data)
        .mark_boxplot(extent="min-max", size=30)
        .encode(
            x=alt.X("backbone:N"),
            y=alt.Y("value:Q", title=f"final CKA to pre-trained (block {layer})", scale=alt.Scale(zero=False)),
            color=alt.Color("backbone:N", scale=BACKBONE_COLOURS, legend=None),
        )
        .properties(width=240, height=220)
    )
    stats = data.group_by("backbone").agg(
        mean=pl.col("value").mean(), sd=pl.col("value").std(), seeds=pl.len()
    ).sort("backbone")
    return chart, {"layer": layer, "per_backbone": stats.to_dicts()}


def correlation_chart(runs: pl.DataFrame, fits: pl.DataFrame, layer: int, metrics: list[str]):
    """Each run's final CKA (block `layer`) against k-NN accuracy and ECE, with the fitted interval line."""
    cka = runs.filter((pl.col("metric") == "cka") & (pl.col("layer") == layer)).select("run", "backbone", cka="value")
    points = pl.concat(
        [
            cka.join(runs.filter(pl.col("metric") == m).select("run", value="value"), on="run").with_columns(
                metric=pl.lit(m)
            )
            for m in metrics
        ]
    )
    lines = (
        fits.filter((pl.col("layer") == layer) & pl.col("r").is_not_null())
        .join(points.group_by("backbone", "metric").agg(lo=pl.col("cka").min(), hi=pl.col("cka").max()),
              on=["backbone", "metric"])
        .select("backbone", "metric", "r", x=pl.concat_list("lo", "hi"), slope="slope", intercept="intercept")
        .explode("x")
        .with_columns(y=pl.col("intercept") + pl.col("slope") * pl.col("x"))
    )
    panels = []
    for m in metrics:
        dots = alt.Chart(points.filter(pl.col("metric") == m)).mark_point(opacity=0.6).encode(
            x=alt.X("cka:Q", title=f"CKA to pre-trained (block {layer})", scale=alt.Scale(zero=False)),
            y=alt.Y("value:Q", title=m, scale=alt.Scale(zero=False)),
            color=alt.Color("backbone:N", scale=BACKBONE_COLOURS),
            tooltip=["run", alt.Tooltip("cka:Q", format=".4f"), alt.Tooltip("value:Q", format=".3f")],
        )
        fit = alt.Chart(lines.filter(pl.col("metric") == m)).mark_line().encode(
            x="x:Q", y="y:Q", color=alt.Color("backbone:N", scale=BACKBONE_COLOURS),
            tooltip=["backbone", alt.Tooltip("r:Q", format=".3f")],
        )
        panels.append((dots + fit).properties(width=240, height=200))
    chart = alt.hconcat(*panels)
    r = fits.filter(pl.col("layer") == layer).select("metric", "backbone", "r", "p_value").to_dicts()
    return chart, {"layer": layer, "r": r}


def render(name: str, chart, numbers: dict, html, svg, caption) -> None:
    """Save a figure and write its caption with the numbers it shows."""
    from repdrift.captions import write_caption

    save_chart(chart, html, svg)
    write_caption(name, numbers, caption)
    print(numbers)
