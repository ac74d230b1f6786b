from pathlib import Path

from repdrift.extract import cka_references
from repdrift.rule import run

p = snakemake.params
run(
    snakemake,
    cka_references,
    backbone_cfg=dict(p.backbone),
    weights=snakemake.input.weights,
    jobs=[
        (Path(manifest).parent, out)
        for manifest, out in zip(snakemake.input.manifests, snakemake.output.references, strict=True)
    ],
    cka_samples=p.cka_samples,
    pools=list(p.pools),
    batch_size=p.batch_size,
    dtype=p.dtype,
)
