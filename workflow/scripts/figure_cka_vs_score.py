import polars as pl

from repdrift.plots import cka_vs_score_chart, save_chart
from repdrift.rule import run


def figure(runs, html, svg):
    chart, numbers = cka_vs_score_chart(pl.read_parquet(runs))
    save_chart(chart, html, svg)
    print(numbers)


run(snakemake, figure, runs=snakemake.input.runs, html=snakemake.output.html, svg=snakemake.output.svg)
