import polars as pl

from repdrift.analysis import correlation_table
from repdrift.rule import run


def correlation(
    runs, grids, grid, metrics, similarity, n_intervals, outliers, confidence, out, points_out, bootstrap_out
):
    fits, points, bootstrap = correlation_table(
        pl.read_parquet(runs), pl.read_parquet(grids), grid, metrics, similarity, n_intervals, outliers, confidence
    )
    fits.write_csv(out)
    points.write_parquet(points_out)
    bootstrap.write_parquet(bootstrap_out)


i, p, o = snakemake.input, snakemake.params, snakemake.output
run(
    snakemake,
    correlation,
    runs=i.runs,
    grids=i.grids,
    grid=p.grid,
    metrics=list(p.metrics),
    similarity=p.similarity,
    n_intervals=p.n_intervals,
    outliers=p.outliers,
    confidence=p.confidence,
    out=o.fits,
    points_out=o.points,
    bootstrap_out=o.bootstrap,
)
