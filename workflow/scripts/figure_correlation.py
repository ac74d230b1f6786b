import polars as pl

from repdrift.plots import correlation_chart, grid_view, render
from repdrift.rule import run


def figure(runs, fits, points, grids, grid, similarity, layer, metrics, n_intervals, outliers, confidence, out):
    _, layer, last, facts = grid_view(pl.read_parquet(runs), pl.read_parquet(grids), grid, similarity, layer)
    chart, numbers = correlation_chart(pl.read_csv(fits), pl.read_parquet(points), similarity, layer, last, metrics)
    numbers.update(n_intervals=n_intervals, outliers=outliers, confidence=confidence)
    render("correlation", chart, numbers | facts, out.html, out.svg, out.caption)


i, p = snakemake.input, snakemake.params
run(snakemake, figure, runs=i.runs, fits=i.fits, points=i.points, grids=i.grids, grid=p.grid,
    similarity=p.similarity, layer=p.layer, metrics=list(p.metrics), n_intervals=p.n_intervals, outliers=p.outliers,
    confidence=p.confidence, out=snakemake.output)
