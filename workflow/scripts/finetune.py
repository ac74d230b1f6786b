# Used by rules finetune (one run; every trained method but Linear: also the k-NN features), linear_probe, and
# finetune_batch_* / linear_probe_batch_* (several runs of one backbone, method and pool in one process,
# train.runs_per_job).
from pathlib import Path

from repdrift.checkpoint import checkpoint_path, remove_checkpoint
from repdrift.rule import run, run_each
from repdrift.training import finetune

i, p, wc, out = snakemake.input, snakemake.params, snakemake.wildcards, snakemake.output
batch = "seeds" in p.keys()
where = p if batch else wc  # a batch rule has no wildcards: its run definition comes as params


def train(manifest: str, seed: int, cka_samples: int, outputs: dict, log: str | None) -> None:
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
        dataset_dir=Path(manifest).parent,
        method=where.method,
        pool=where.pool,
        seed=seed,
        recipe=dict(p.recipe),
        model_out=outputs["model"],
        history_out=outputs["history"],
        predictions_out=outputs["predictions"],
        trajectory_out=outputs["trajectory"],
        cka_samples=cka_samples,
        checkpoint=checkpoint_path(Path(outputs["model"]).parent),
        checkpoint_minutes=p.checkpoint_minutes,
        feature_dtype=p.feature_dtype,
        knn=knn,
        method_options=dict(p.method_options) if "method_options" in p.keys() else None,
        keep_checkpoint=batch,
    )


if not batch:
    train(i.manifest, int(wc.seed), p.cka_samples, dict(out.items()), None)
else:
    # One diverged run leaves its failure record and the others their checkpoints, which go once every run of the
    # job is written.
    def train_one(index: int) -> None:
        suffix = f"_{index}"
        outputs = {name.removesuffix(suffix): path for name, path in out.items() if name.endswith(suffix)}
        train(i[f"manifest_{index}"], p.seeds[index], p.cka_samples[index], outputs, snakemake.log[f"run_{index}"])

    run_each(len(p.seeds), train_one)
    for index in range(len(p.seeds)):
        remove_checkpoint(checkpoint_path(Path(out[f"model_{index}"]).parent))
