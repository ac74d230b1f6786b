from pathlib import Path

from repdrift.extract import pretrained_features
from repdrift.rule import run

p = snakemake.params
run(
    snakemake,
    pretrained_features,
    backbone_cfg=dict(p.backbone),
    weights=snakemake.input.weights,
    dataset_dir=Path(snakemake.input.manifest).parent,
    out_path=snakemake.output.features,
    final_splits=list(p.final_splits),
    pools=list(p.pools),
    batch_size=p.batch_size,
    dtype=p.dtype,
)
