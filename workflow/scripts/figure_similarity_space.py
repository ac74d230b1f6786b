import polars as pl

from repdrift.analysis import resolve_layer
from repdrift.plots import render, similarity_axis, similarity_facts, similarity_space_chart
from repdrift.rule import run


def figure(runs, space, similarity, layer, divergence, eta, eps, out):
    space, runs = pl.read_parquet(space), pl.read_parquet(runs)
    last, layer = resolve_layer(runs, "final"), resolve_layer(runs, layer)
    chart, numbers = similarity_space_chart(space, eta, eps, similarity_axis(similarity, layer, last))
    used = runs.join(space.select("run"), on="run", how="semi")
    facts = similarity_facts(used, similarity, layer, last)
    render("similarity_space", chart, numbers | facts | {"divergence": divergence}, out.html, out.svg, out.caption)


p = snakemake.params
run(snakemake, figure, runs=snakemake.input.runs, space=snakemake.input.space, similarity=p.similarity, layer=p.layer,
    divergence=p.divergence, eta=p.eta, eps=p.eps, out=snakemake.output)
