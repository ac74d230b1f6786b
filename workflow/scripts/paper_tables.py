from pathlib import Path

import polars as pl

from repdrift.analysis.tables import dataset_info, html_table, markdown, table1, table2, table_notes
from repdrift.rule import run

TITLES = {
    "table1": "Table 1: test accuracy (mAP for multi-label data), CLS pooling (mean-patch minus CLS)",
    "table2": "Table 2: k-NN accuracy on the natural domain after Full fine-tuning, CLS pooling (mean-patch minus CLS)",
}


def paper_tables(runs, pretrained, folders, datasets, backbones, k, out):
    # The dataset folders come in the order of params.datasets (config order), which sets the column order.
    info = dataset_info(dict(zip(datasets, folders, strict=True)))
    runs = pl.read_parquet(runs)
    tables = {
        "table1": table1(runs, info, backbones),
        "table2": table2(runs, pl.read_parquet(pretrained), info, backbones, k),
    }
    for name, (display, numbers) in tables.items():
        notes = table_notes(numbers)
        numbers.write_csv(out[f"{name}_csv"])
        Path(out[f"{name}_md"]).write_text(markdown(display, notes))
        Path(out[f"{name}_html"]).write_text(html_table(display, TITLES[name], notes))


run(
    snakemake,
    paper_tables,
    runs=snakemake.input.runs,
    pretrained=snakemake.input.pretrained,
    folders=[Path(m).parent for m in snakemake.input.datasets],
    datasets=list(snakemake.params.datasets),
    backbones=list(snakemake.params.backbones),
    k=snakemake.params.k,
    out=dict(snakemake.output.items()),
)
