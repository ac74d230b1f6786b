# Used by rule wiseft: every a of one seed's weight-space ensemble of its Linear probe and LP-FT run
# (repdrift.training.wiseft).
from pathlib import Path

from repdrift.rule import run
from repdrift.training.wiseft import wise_ft

i, p, o, wc = snakemake.input, snakemake.params, snakemake.output, snakemake.wildcards
names = ("models", "histories", "predictions", "trajectories", "naturals")
keys = ("model", "history", "predictions", "trajectory", "natural")
run(
    snakemake,
    wise_ft,
    backbone_cfg=dict(p.backbone),
    probe_model=i.probe,
    lpft_model=i.lpft,
    dataset_dir=Path(i.manifest).parent,
    alphas=list(p.alphas),
    methods=list(p.methods),
    outputs=[dict(zip(keys, files)) for files in zip(*(o[name] for name in names), strict=True)],
    epochs=p.epochs,
    seed=int(wc.seed),
    batch_size=p.batch_size,
    cka_samples=p.cka_samples,
    feature_dtype=p.feature_dtype,
    knn=dict(dataset_dir=Path(i.natural).parent, splits=list(p.knn_splits), batch_size=p.batch_size),
)
