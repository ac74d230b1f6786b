from pathlib import Path

from repdrift.models.pretrain import pretrain_on_dataset
from repdrift.rule import run

run(
    snakemake,
    pretrain_on_dataset,
    backbone_cfg=dict(snakemake.params.backbone),
    dataset_dir=Path(snakemake.input.manifest).parent,
    recipe=dict(snakemake.params.recipe),
    weights_out=snakemake.output.weights,
    history_out=snakemake.output.history,
)
