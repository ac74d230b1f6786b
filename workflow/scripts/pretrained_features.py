from pathlib import Path

from repdrift.extract import pretrained_features
from repdrift.rule import run

run(
    snakemake,
    pretrained_features,
    backbone_cfg=dict(snakemake.params.backbone),
    weights=snakemake.input.weights,
    dataset_dir=Path(snakemake.input.manifest).parent,
    splits=list(snakemake.params.splits),
    out_path=snakemake.output.features,
    batch_size=snakemake.params.batch_size,
)
