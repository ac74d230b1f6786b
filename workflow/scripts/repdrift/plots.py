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
