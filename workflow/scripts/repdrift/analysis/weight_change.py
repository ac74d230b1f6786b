"""The rank of the weight change, per run and per method (Biderman et al. 2024, "LoRA Learns Less and Forgets Less",
TMLR: full fine-tuning's change has a rank 10-100x higher than usual LoRA ranks), from each trained run's
weight_change.parquet (repdrift.measurement.weight_change: the singular values of W_ft - W_0 of every block's
attention and MLP matrices). Torch-free.

`change_table` (results/tables/weight_change.parquet): one row per run x block x matrix: the run keys, `block` (1..L),
`matrix` (qkv, proj, fc1, fc2), `rows`, `cols`, `full_rank` (min(rows, cols)), `rank` (the smallest k whose top-k
singular values hold `energy` of the change's squared Frobenius norm, `analysis.change_energy`; 0 for no change:
repdrift.metrics.spectrum.energy_rank), `rank_fraction` (rank / full_rank), `relative_change` (||dW||_F / ||W_0||_F)
and `energy`.

`change_run_rows`: runs.parquet's rows of each such run (layer null): `change_rank`, the median over its block
matrices of the rank; `change_rank_fraction`, the median of rank / full rank; `change_relative`, the median
relative change.

`change_rank_chart` / `change_rank_caption`: the rank per block, median over seeds, one line per method, faceted by
matrix and backbone, on the similarity grid's dataset and pool (every trained run there, whichever grid asked for
it), with the numbers in the caption (rule tradeoff).
"""

from __future__ import annotations

import polars as pl

from repdrift.metrics.spectrum import energy_rank
from repdrift.study import base_method

KEYS = ["run", "dataset", "backbone", "method", "pool", "seed"]
MATRICES = ("qkv", "proj", "fc1", "fc2")
RUN_METRICS = {"change_rank": "rank", "change_rank_fraction": "rank_fraction", "change_relative": "relative_change"}
TABLE_SCHEMA = {
    **{k: pl.Utf8 for k in KEYS},
    "seed": pl.Int64,
    "block": pl.Int64,
    "matrix": pl.Utf8,
    "rows": pl.Int64,
    "cols": pl.Int64,
    "full_rank": pl.Int64,
    "rank": pl.Int64,
    "rank_fraction": pl.Float64,
    "relative_change": pl.Float64,
    "energy": pl.Float64,
}


def run_change(path: str, energy: float) -> pl.DataFrame:
    """One run's weight_change.parquet with each matrix's rank at `energy`."""
    frame = pl.read_parquet(path)
    ranks = [energy_rank(s, energy) for s in frame["singular_values"].to_list()]
    return frame.drop("singular_values").with_columns(
        full_rank=pl.min_horizontal("rows", "cols").cast(pl.Int64),
        rank=pl.Series(ranks, dtype=pl.Int64),
        energy=pl.lit(energy, pl.Float64),
    )


def change_table(runs: list[dict], files: list[str], energy: float) -> pl.DataFrame:
    """The study table of the module docstring; `runs` (each run's id and wildcards, as the workflow knows them) and
    `files` (its weight_change.parquet) are parallel lists."""
    parts = []
    for run, path in zip(runs, files, strict=True):
        frame = run_change(path, energy)
        keys = {**{k: run[k] for k in KEYS}, "seed": int(run["seed"])}
        parts.append(frame.with_columns(**{k: pl.lit(v) for k, v in keys.items()}))
    if not parts:
        return pl.DataFrame(schema=TABLE_SCHEMA)
    table = pl.concat(parts).with_columns(rank_fraction=pl.col("rank") / pl.col("full_rank"))
    return table.select(pl.col(c).cast(t) for c, t in TABLE_SCHEMA.items())


def change_run_rows(table: pl.DataFrame) -> pl.DataFrame:
    """runs.parquet's long rows (run keys, metric, layer null, value) of every run in `table`."""
    medians = table.group_by(KEYS, maintain_order=True).agg(
        **{metric: pl.col(column).cast(pl.Float64).median() for metric, column in RUN_METRICS.items()}
    )
    return (
        medians.unpivot(index=KEYS, on=list(RUN_METRICS), variable_name="metric", value_name="value")
        .with_columns(layer=pl.lit(None, pl.Int64), value=pl.col("value").cast(pl.Float64))
        .select(*KEYS, "metric", "layer", "value")
    )


def cell_of(grids: pl.DataFrame, grid: str) -> tuple[str, str]:
    """The dataset and pool of a grid with one of each (analysis.similarity_grid's, checked by the workflow)."""
    members = grids.filter(pl.col("grid") == grid)
    return members["dataset"].unique().sort()[0], members["pool"].unique().sort()[0]


def per_block(table: pl.DataFrame, dataset: str, pool: str) -> pl.DataFrame:
    """The rank per backbone, method, matrix and block on one dataset and pool: median over the seeds, with their
    count and the full rank."""
    return (
        table.filter(pl.col("dataset") == dataset, pl.col("pool") == pool)
        .group_by("backbone", "method", "matrix", "block")
        .agg(
            rank=pl.col("rank").cast(pl.Float64).median(),
            full_rank=pl.col("full_rank").max(),
            relative_change=pl.col("relative_change").median(),
            seeds=pl.col("seed").n_unique(),
        )
        .sort("backbone", "method", "matrix", "block")
    )


def change_rank_chart(blocks: pl.DataFrame):
    """The rank per block (`per_block`), one line per method, faceted by matrix (columns) and backbone (rows)."""
    import altair as alt  # the figure's job only: aggregate reads this module too

    from repdrift.report.plots import METHOD_COLOURS

    line = (
        alt.Chart(blocks)
        .mark_line(point=True)
        .encode(
            x=alt.X("block:O", title="block"),
            y=alt.Y("rank:Q", title="rank of the change (median over seeds)"),
            color=alt.Color("method:N", scale=METHOD_COLOURS),
            tooltip=[
                "backbone",
                "method",
                "matrix",
                "block",
                alt.Tooltip("rank:Q", format=".1f"),
                "full_rank",
                alt.Tooltip("relative_change:Q", format=".4f", title="||dW|| / ||W0||"),
                "seeds",
            ],
        )
        .properties(width=150, height=140)
    )
    return line.facet(column=alt.Column("matrix:N", sort=list(MATRICES)), row=alt.Row("backbone:N")).resolve_scale(
        y="independent"
    )


def summary(blocks: pl.DataFrame) -> pl.DataFrame:
    """Per backbone and method: the median rank over every block and matrix (of the seed medians), the full rank,
    the median relative change and the seeds."""
    return (
        blocks.group_by("backbone", "method")
        .agg(
            rank=pl.col("rank").median(),
            lo=pl.col("rank").min(),
            hi=pl.col("rank").max(),
            full_rank=pl.col("full_rank").max(),
            relative_change=pl.col("relative_change").median(),
            seeds=pl.col("seeds").max(),
        )
        .sort("backbone", "method")
    )


def change_rank_caption(blocks: pl.DataFrame, dataset: str, pool: str, energy: float) -> str:
    """The caption: what is shown, then per backbone each method's median rank (range over blocks and matrices) of
    the full rank, its relative change and seeds, and Full's median rank against each LoRA rank r."""
    if blocks.height == 0:
        return (
            f"Rank of the weight change: no trained run on {dataset} ({pool} pool), the similarity grid's dataset "
            "and pool."
        )
    parts = []
    for (backbone,), rows in summary(blocks).group_by("backbone", maintain_order=True):
        methods = {r["method"]: r for r in rows.iter_rows(named=True)}
        text = "; ".join(
            f"{m} {r['rank']:g} ({r['lo']:g}-{r['hi']:g}) of {r['full_rank']}, "
            f"||dW||/||W0|| {r['relative_change']:.3g}, {r['seeds']} seed{'s' if r['seeds'] != 1 else ''}"
            for m, r in methods.items()
        )
        if "full" in methods:
            ratios = [
                f"{methods['full']['rank'] / int(m.removeprefix('lora')):.2g}x LoRA's r = {m.removeprefix('lora')}"
                for m in methods
                if base_method(m) == "lora"
            ]
            if ratios:
                text += f"; Full's median rank is {', '.join(ratios)}"
        parts.append(f"{backbone}: {text}")
    shown = (
        f"Rank of the weight change W_ft - W_0 (Biderman et al. 2024's measure, here for ViTs): per block, the "
        f"smallest number of singular values holding {100 * energy:g} % of the change's energy (analysis.change_energy)"
    )
    what = (
        "of each attention (qkv, proj) and MLP (fc1, fc2) matrix, median over seeds, one line per method, on "
        f"{dataset} ({pool} pool), the similarity grid's dataset and pool: every trained run there (W_0: the "
        "pre-trained weights, Scratch's its random initialisation)."
    )
    numbers = (
        f"Per backbone and method, the median over blocks and matrices (range) of the full rank: {'. '.join(parts)}."
    )
    notes = (
        "A LoRA run's change has rank at most r by construction; BitFit's block matrices do not change (rank 0), "
        "partial's only in its top blocks. WiSE-FT is not shown: its change is a x its LP-FT run's, of the same rank."
    )
    return " ".join([shown, what, numbers, notes])
