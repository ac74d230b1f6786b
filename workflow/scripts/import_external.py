# Used by rule import_external: one external_models entry imported as a run (repdrift.training.external).
from pathlib import Path

from repdrift.rule import run
from repdrift.training.external import import_external
from repdrift.training.finetune import RunOutputs

i, p, o = snakemake.input, snakemake.params, snakemake.output
run(
    snakemake,
    import_external,
    backbone_cfg=dict(p.backbone),
    weights=i.weights,
    entry=dict(p.entry),
    key=p.key,
    dataset_dir=Path(i.manifest).parent,
    outputs=RunOutputs(**dict(o.items())),
    batch_size=p.batch_size,
    cka_samples=p.cka_samples,
    feature_dtype=p.feature_dtype,
    knn=dict(dataset_dir=Path(i.natural).parent, splits=list(p.knn_splits), batch_size=p.feature_batch_size),
)
