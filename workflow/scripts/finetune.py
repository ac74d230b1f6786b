# Used by rules finetune (methods of kind `trained`: also the final model's k-NN features) and linear_probe.
from pathlib import Path

from repdrift.rule import run
from repdrift.training.checkpoint import checkpoint_path
from repdrift.training.finetune import RunOutputs, finetune

i, p, wc, o = snakemake.input, snakemake.params, snakemake.wildcards, snakemake.output
knn = None
if "natural" in o.keys():
    knn = dict(dataset_dir=Path(i.natural).parent, splits=list(p.knn_splits), batch_size=p.feature_batch_size)
run(
    snakemake,
    finetune,
    backbone_cfg=dict(p.backbone),
    weights=i.weights,
    dataset_dir=Path(i.manifest).parent,
    method=wc.method,
    pool=wc.pool,
    seed=int(wc.seed),
    recipe=dict(p.recipe),
    outputs=RunOutputs(**dict(o.items())),
    cka_samples=p.cka_samples,
    checkpoint=checkpoint_path(Path(o.model).parent),
    checkpoint_minutes=p.checkpoint_minutes,
    feature_dtype=p.feature_dtype,
    knn=knn,
    method_options=dict(p.method_options) if "method_options" in p.keys() else None,
)
