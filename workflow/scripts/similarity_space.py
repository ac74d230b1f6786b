import polars as pl

from repdrift.analysis import similarity_space_table, sweep_table
from repdrift.rule import run


def similarity_space(runs, layer, divergence, etas, epss, space_out, sweep_out):
    space = similarity_space_table(pl.read_parquet(runs), layer, divergence)
    space.write_parquet(space_out)
    sweep_table(space, etas, epss).write_csv(sweep_out)


p, o = snakemake.params, snakemake.output
run(snakemake, similarity_space, runs=snakemake.input.runs, layer=p.layer, divergence=p.divergence,
    etas=list(p.etas), epss=list(p.epss), space_out=o.space, sweep_out=o.sweep)
