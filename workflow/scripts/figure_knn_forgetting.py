import polars as pl

from repdrift.plots import knn_forgetting_chart, render
from repdrift.rule import run


def figure(runs, pretrained, k, out):
    chart, numbers = knn_forgetting_chart(pl.read_parquet(runs), pl.read_parquet(pretrained), k)
    render("knn_forgetting", chart, numbers, out.html, out.svg, out.caption)


i = snakemake.input
run(snakemake, figure, runs=i.runs, pretrained=i.pretrained, k=snakemake.params.k, out=snakemake.output)
