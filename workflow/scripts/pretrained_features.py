from pathlib import Path

from repdrift.extract import pretrained_features
from repdrift.rule import run

i, p, o = snakemake.input, snakemake.params, snakemake.output
run(
    snakemake,
    pretrained_features,
    backbone_cfg=dict(p.backbone),
    weights=i.weights,
    natural=(Path(i.natural).parent, o.natural),
    references=[(Path(m).parent, out) for m, out in zip(i.targets, o.references, strict=True)],
    knn_splits=list(p.knn_splits),
    cka_samples=list(p.cka_samples),  # parallel to references: each dataset's own n
    pools=list(p.pools),
    batch_size=p.batch_size,
    dtype=p.dtype,
)
