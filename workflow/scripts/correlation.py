import polars as pl

from repdrift.analysis import correlation_table
from repdrift.rule import run


def correlation(runs, metrics, n_intervals, outliers, out):
    correlation_table(pl.read_parquet(runs), metrics, n_intervals, outliers).write_csv(out)


p = snakemake.params
run(snakemake, correlation, runs=snakemake.input.runs, metrics=list(p.metrics), n_intervals=p.n_intervals,
    outliers=p.outliers, out=snakemake.output.fits)
