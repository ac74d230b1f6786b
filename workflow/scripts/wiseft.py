# Used by rule wiseft: every a of one Full run's weight-space ensemble (repdrift.wiseft).
from pathlib import Path

from repdrift.rule import run
from repdrift.wiseft import wise_ft

i, p, o, wc = snakemake.input, snakemake.params, snakemake.output, snakemake.wildcards
names = ("models", "histories", "predictions", "trajectories", "naturals")
keys = ("model", "history", "predictions", "trajectory", "natural")
outputs = [dict(zip(keys, files)) for files in zip(*(o[name] for name in names), strict=True)]
run(
    snakemake,
    wise_ft,
    backbone_cfg=dict(p.backbone),
    weights=i.weights,
    full_model=i.full,
    dataset_dir=Path(i.manifest).parent,
    alphas=list(p.alphas),
    methods=list(p.methods),
    outputs=outputs,
    epochs=p.epochs,
    seed=int(wc.seed),
    batch_size=p.batch_size,
    cka_samples=p.cka_samples,
    feature_dtype=p.feature_dtype,
    knn=dict(dataset_dir=Path(i.natural).parent, splits=list(p.knn_splits), batch_size=p.batch_size),
)
