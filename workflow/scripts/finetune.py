from pathlib import Path

from repdrift.checkpoint import checkpoint_path
from repdrift.rule import run
from repdrift.training import finetune

wc, out = snakemake.wildcards, snakemake.output
run(
    snakemake,
    finetune,
    backbone_cfg=dict(snakemake.params.backbone),
    weights=snakemake.input.weights,
    dataset_dir=Path(snakemake.input.manifest).parent,
    method=wc.method,
    pool=wc.pool,
    seed=int(wc.seed),
    recipe=dict(snakemake.params.recipe),
    model_out=out.model,
    history_out=out.history,
    predictions_out=out.predictions,
    trajectory_out=out.trajectory,
    cka_samples=snakemake.params.cka_samples,
    checkpoint=checkpoint_path(Path(out.model).parent),
    feature_dtype=snakemake.params.feature_dtype,
)
