import polars as pl

from repdrift.analysis.paper import similarity_space_table, sweep_epss, sweep_etas, sweep_table
from repdrift.rule import run
from repdrift.study import PAPER_METHODS


def similarity_space(runs, layer, similarity, divergence, etas, epss, space_out, sweep_out):
    space = similarity_space_table(pl.read_parquet(runs), layer, similarity, divergence)
    space.write_parquet(space_out)  # every method: rule tradeoff reads the preserving ones' T_X membership
    space = space.filter(pl.col("method").is_in(PAPER_METHODS))  # the paper's sweep: Full and Scratch runs
    etas = sweep_etas(space) if etas is None else etas
    epss = sweep_epss(space) if epss is None else epss
    sweep_table(space, etas, epss).write_csv(sweep_out)


p, o = snakemake.params, snakemake.output
listed = {k: None if getattr(p, k) is None else list(getattr(p, k)) for k in ("etas", "epss")}  # null: span the data
run(
    snakemake,
    similarity_space,
    runs=snakemake.input.runs,
    layer=p.layer,
    similarity=p.similarity,
    divergence=p.divergence,
    **listed,
    space_out=o.space,
    sweep_out=o.sweep,
)
