# Used by rules finetune (every trained method but Linear: also the k-NN features) and linear_probe.
from pathlib import Path

from repdrift.checkpoint import checkpoint_path
from repdrift.rule import run
from repdrift.training import finetune

i, p, wc, out = snakemake.input, snakemake.params, snakemake.wildcards, snakemake.output
knn = None
if "natural" in out.keys():
    knn = dict(
        dataset_dir=Path(i.natural).parent,
        out_path=out.natural,
        splits=list(p.knn_splits),
        batch_size=p.feature_batch_size,
    )
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
    model_out=out.model,
    history_out=out.history,
    predictions_out=out.predictions,
    trajectory_out=out.trajectory,
    cka_samples=p.cka_samples,
    checkpoint=checkpoint_path(Path(out.model).parent),
    checkpoint_minutes=p.checkpoint_minutes,
    feature_dtype=p.feature_dtype,
    knn=knn,
    method_options=dict(p.method_options) if "method_options" in p.keys() else None,
)
