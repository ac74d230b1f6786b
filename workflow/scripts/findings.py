import polars as pl

from repdrift.findings import findings, write_findings_page
from repdrift.rule import run


def page(runs, fits, layer, eta, k, out):
    items = findings(pl.read_parquet(runs), pl.read_csv(fits), layer, eta, k)
    write_findings_page(items, out)
    for item in items:
        print(item["title"], "->", item["verdict"])


p = snakemake.params
run(snakemake, page, runs=snakemake.input.runs, fits=snakemake.input.fits, layer=p.layer, eta=p.eta, k=p.k,
    out=snakemake.output.page)
