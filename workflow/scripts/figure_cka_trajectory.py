import polars as pl

from repdrift.plots import cka_trajectory_chart, save_chart
from repdrift.rule import run


def figure(trajectories, grids, grid, html, svg):
    chart, numbers = cka_trajectory_chart(pl.read_parquet(trajectories), pl.read_parquet(grids), grid)
    save_chart(chart, html, svg)
    print(numbers)


i, o = snakemake.input, snakemake.output
run(snakemake, figure, trajectories=i.trajectories, grids=i.grids, grid=snakemake.params.grid, html=o.html, svg=o.svg)
