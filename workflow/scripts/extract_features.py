from pathlib import Path

from repdrift.extract import finetuned_features
from repdrift.rule import run

i, p, o = snakemake.input, snakemake.params, snakemake.output
run(
    snakemake,
    finetuned_features,
    backbone_cfg=dict(p.backbone),
    model_path=i.model,
    jobs=[(Path(i.natural).parent, list(p.natural_splits), o.natural)],
    batch_size=p.batch_size,
)
