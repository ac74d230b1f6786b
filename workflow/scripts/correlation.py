import polars as pl

from repdrift.analysis.paper import FitRule, correlation_table
from repdrift.rule import run


def correlation(runs, grids, grid, metrics, similarity, fit_rule, confidence, out, points_out, bootstrap_out):
    fits, points, bootstrap = correlation_table(
        pl.read_parquet(runs), pl.read_parquet(grids), grid, metrics, similarity, FitRule(**fit_rule), confidence
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
    fit_rule=dict(p.fit_rule),
    confidence=p.confidence,
    out=o.fits,
    points_out=o.points,
    bootstrap_out=o.bootstrap,
)
