import polars as pl

from repdrift.analysis import resolve_layer
from repdrift.plots import correlation_chart, render
from repdrift.rule import run


def figure(runs, fits, layer, metrics, n_intervals, outliers, out):
    runs = pl.read_parquet(runs)
    chart, numbers = correlation_chart(runs, pl.read_csv(fits), resolve_layer(runs, layer), metrics)
    numbers.update(n_intervals=n_intervals, outliers=outliers)
    render("correlation", chart, numbers, out.html, out.svg, out.caption)


i, p = snakemake.input, snakemake.params
run(snakemake, figure, runs=i.runs, fits=i.fits, layer=p.layer, metrics=list(p.metrics), n_intervals=p.n_intervals,
    outliers=p.outliers, out=snakemake.output)
