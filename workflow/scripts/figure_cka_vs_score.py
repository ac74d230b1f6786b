import polars as pl

from repdrift.plots import cka_vs_score_chart, render
from repdrift.rule import run


def figure(runs, out):
    chart, numbers = cka_vs_score_chart(pl.read_parquet(runs))
    render("cka_vs_score", chart, numbers, out.html, out.svg, out.caption)


run(snakemake, figure, runs=snakemake.input.runs, out=snakemake.output)
