import polars as pl

from repdrift.plots import knn_forgetting_chart, save_chart
from repdrift.rule import run


def figure(runs, pretrained, k, html, svg):
    chart, numbers = knn_forgetting_chart(pl.read_parquet(runs), pl.read_parquet(pretrained), k)
    save_chart(chart, html, svg)
    print(numbers)


i, o = snakemake.input, snakemake.output
run(snakemake, figure, runs=i.runs, pretrained=i.pretrained, k=snakemake.params.k, html=o.html, svg=o.svg)
