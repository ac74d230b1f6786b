import polars as pl

from repdrift.plots import cka_vs_score_chart, grid_view, render
from repdrift.rule import run


def figure(runs, grids, grid, similarity, layer, out):
    selected, layer, last, facts = grid_view(pl.read_parquet(runs), pl.read_parquet(grids), grid, similarity, layer)
    chart, numbers = cka_vs_score_chart(selected, similarity, layer, last)
    render("cka_vs_score", chart, numbers | facts, out.html, out.svg, out.caption)


i, p = snakemake.input, snakemake.params
run(snakemake, figure, runs=i.runs, grids=i.grids, grid=p.grid, similarity=p.similarity, layer=p.layer,
    out=snakemake.output)
