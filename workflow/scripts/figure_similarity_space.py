import polars as pl

from repdrift.plots import render, similarity_space_chart
from repdrift.rule import run


def figure(space, eta, eps, out):
    space = pl.read_parquet(space)
    chart, numbers = similarity_space_chart(space, eta, eps)
    numbers.update(layer=int(space["layer"][0]), divergence=space["divergence_kind"][0])
    render("similarity_space", chart, numbers, out.html, out.svg, out.caption)


p = snakemake.params
run(snakemake, figure, space=snakemake.input.space, eta=p.eta, eps=p.eps, out=snakemake.output)
