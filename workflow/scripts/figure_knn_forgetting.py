import polars as pl

from repdrift.analysis import grid_runs
from repdrift.plots import knn_forgetting_chart, render
from repdrift.rule import run


def figure(runs, pretrained, grids, grid, k, confidence, out):
    selected = grid_runs(pl.read_parquet(runs), pl.read_parquet(grids), grid)
    chart, numbers = knn_forgetting_chart(selected, pl.read_parquet(pretrained), k, confidence)
    render("knn_forgetting", chart, numbers | {"grid": grid}, out.html, out.svg, out.caption)


i, p = snakemake.input, snakemake.params
run(snakemake, figure, runs=i.runs, pretrained=i.pretrained, grids=i.grids, grid=p.grid, k=p.k,
    confidence=p.confidence, out=snakemake.output)
