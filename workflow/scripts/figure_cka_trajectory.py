import polars as pl

from repdrift.analysis import grid_runs
from repdrift.plots import cka_trajectory_chart, grid_view, render
from repdrift.rule import run


def figure(runs, trajectories, grids, grid, similarity, layer, out):
    grids = pl.read_parquet(grids)
    _, layer, last, facts = grid_view(pl.read_parquet(runs), grids, grid, similarity, layer)
    trajectories = grid_runs(pl.read_parquet(trajectories), grids, grid)
    chart, numbers = cka_trajectory_chart(trajectories, similarity, layer, last, facts["n"])
    render("cka_trajectory", chart, numbers | facts, out.html, out.svg, out.caption)


i, p = snakemake.input, snakemake.params
run(snakemake, figure, runs=i.runs, trajectories=i.trajectories, grids=i.grids, grid=p.grid, similarity=p.similarity,
    layer=p.layer, out=snakemake.output)
