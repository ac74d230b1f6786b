from pathlib import Path

from repdrift.data import build_dataset, write_dataset
from repdrift.rule import run


def prepare(kind, root, options, out_dir):
    write_dataset(build_dataset(kind, root, **options), out_dir)


p = snakemake.params
run(
    snakemake,
    prepare,
    kind=p.kind,
    root=p.root,
    options=dict(p.options),
    out_dir=Path(snakemake.output.manifest).parent,
)
