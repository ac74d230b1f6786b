import polars as pl

from repdrift.analysis import grid_runs
from repdrift.plots import cka_heatmap_chart, grid_view, render
from repdrift.rule import run


def figure(runs, trajectories, grids, grid, similarity, out):
    grids = pl.read_parquet(grids)
    _, _, last, facts = grid_view(pl.read_parquet(runs), grids, grid, similarity, "final")
    chart, numbers = cka_heatmap_chart(grid_runs(pl.read_parquet(trajectories), grids, grid), similarity, last)
    render("cka_heatmap", chart, numbers | facts | {"layer": "every layer"}, out.html, out.svg, out.caption)


i, p = snakemake.input, snakemake.params
run(snakemake, figure, runs=i.runs, trajectories=i.trajectories, grids=i.grids, grid=p.grid, similarity=p.similarity,
    out=snakemake.output)
