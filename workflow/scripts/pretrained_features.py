# Used by rule pretrained_features: a pre-trained backbone's feature file of one dataset (repdrift.measurement.extract).
from pathlib import Path

from repdrift.measurement.extract import pretrained_features
from repdrift.rule import run

i, p, o = snakemake.input, snakemake.params, snakemake.output
run(
    snakemake,
    pretrained_features,
    backbone_cfg=dict(p.backbone),
    weights=i.weights,
    dataset_dir=Path(i.manifest).parent,
    out_path=o.features,
    final_splits=list(p.final_splits),
    cka_samples=p.cka_samples,
    pools=list(p.pools),
    batch_size=p.batch_size,
    dtype=p.dtype,
)
