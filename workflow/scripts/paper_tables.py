from pathlib import Path

import polars as pl

from repdrift.rule import run
from repdrift.tables import html_table, markdown, table1, table2


def paper_tables(runs, pretrained, k, out):
    runs = pl.read_parquet(runs)
    for name, table in (("table1", table1(runs)), ("table2", table2(runs, pl.read_parquet(pretrained), k))):
        table.write_csv(out[f"{name}_csv"])
        Path(out[f"{name}_md"]).write_text(markdown(table))
        Path(out[f"{name}_html"]).write_text(html_table(table, f"Table {name[-1]}"))


run(snakemake, paper_tables, runs=snakemake.input.runs, pretrained=snakemake.input.pretrained, k=snakemake.params.k,
    out=dict(snakemake.output.items()))
