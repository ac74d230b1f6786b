import polars as pl

from repdrift.plots import cka_heatmap_chart, render
from repdrift.rule import run


def figure(trajectories, grids, grid, out):
    chart, numbers = cka_heatmap_chart(pl.read_parquet(trajectories), pl.read_parquet(grids), grid)
    render("cka_heatmap", chart, numbers, out.html, out.svg, out.caption)


i = snakemake.input
run(snakemake, figure, trajectories=i.trajectories, grids=i.grids, grid=snakemake.params.grid, out=snakemake.output)
