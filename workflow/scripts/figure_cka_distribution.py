import polars as pl

from repdrift.analysis import resolve_layer
from repdrift.plots import cka_distribution_chart, render
from repdrift.rule import run


def figure(runs, grids, grid, layer, out):
    runs = pl.read_parquet(runs)
    chart, numbers = cka_distribution_chart(runs, pl.read_parquet(grids), grid, resolve_layer(runs, layer))
    render("cka_distribution", chart, numbers, out.html, out.svg, out.caption)


i, p = snakemake.input, snakemake.params
run(snakemake, figure, runs=i.runs, grids=i.grids, grid=p.grid, layer=p.layer, out=snakemake.output)
