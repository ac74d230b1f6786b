from pathlib import Path

from repdrift.extract import finetuned_features
from repdrift.rule import run

i, p = snakemake.input, snakemake.params
run(
    snakemake,
    finetuned_features,
    backbone_cfg=dict(p.backbone),
    model_path=i.model,
    dataset_dir=Path(i.natural).parent,
    out_path=snakemake.output.natural,
    final_splits=list(p.final_splits),
    pools=[snakemake.wildcards.pool],
    batch_size=p.batch_size,
    dtype=p.dtype,
)
