# Used by rules finetune (one run; every trained method but Linear: also the k-NN features), finetune_batch_* (the
# seeds of one run definition in one process, train.seeds_per_job) and linear_probe.
from pathlib import Path

from repdrift.checkpoint import checkpoint_path, remove_checkpoint
from repdrift.rule import run
from repdrift.training import finetune

i, p, wc, out = snakemake.input, snakemake.params, snakemake.wildcards, snakemake.output
batch = "seeds" in p.keys()
where = p if batch else wc  # a batch rule has no wildcards: its run definition comes as params


def train(seed: int, outputs: dict, log: str | None) -> None:
    knn = None
    if "natural" in outputs:
        knn = dict(
            dataset_dir=Path(i.natural).parent,
            out_path=outputs["natural"],
            splits=list(p.knn_splits),
            batch_size=p.feature_batch_size,
        )
    run(
        snakemake,
        finetune,
        log=log,
        backbone_cfg=dict(p.backbone),
        weights=i.weights,
        dataset_dir=Path(i.manifest).parent,
        method=where.method,
        pool=where.pool,
        seed=seed,
        recipe=dict(p.recipe),
        model_out=outputs["model"],
        history_out=outputs["history"],
        predictions_out=outputs["predictions"],
        trajectory_out=outputs["trajectory"],
        cka_samples=p.cka_samples,
        checkpoint=checkpoint_path(Path(outputs["model"]).parent),
        checkpoint_minutes=p.checkpoint_minutes,
        feature_dtype=p.feature_dtype,
        knn=knn,
        method_options=dict(p.method_options) if "method_options" in p.keys() else None,
        keep_checkpoint=batch,
    )


if not batch:
    train(int(wc.seed), dict(out.items()), None)
else:
    # Every run is tried, each logging to its own file, so one diverged seed leaves a failure record and the others'
    # checkpoints; the job fails if any run did. Checkpoints go once every run of the job is written.
    failed = []
    for seed in p.seeds:
        suffix = f"_{seed}"
        outputs = {name.removesuffix(suffix): path for name, path in out.items() if name.endswith(suffix)}
        try:
            train(seed, outputs, snakemake.log[f"seed{seed}"])
        except SystemExit:
            failed.append(seed)
    if failed:
        raise SystemExit(1)
    for seed in p.seeds:
        remove_checkpoint(checkpoint_path(Path(out[f"model_{seed}"]).parent))
