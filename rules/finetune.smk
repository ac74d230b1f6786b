# Fine-tuning: one job per run; writes weights, history, test predictions and, per epoch, the features of the CKA
# sample (the trajectory). Every method but Linear (Full, Scratch, l2sp, lpft, rift, feature_cka) also extracts the
# final model's k-NN features in the same job (one model load, one process and one GPU allocation per run; changing
# the k-NN dataset therefore re-runs them). A
# Linear probe's backbone is the pre-trained one: its k-NN reads the pre-trained model's features.
# A job checkpoints in {run}/checkpoint/ (not an output; train.checkpoint_minutes) and resumes from there when
# killed and re-run.

FINETUNE_OUTPUTS = {
    "model": "model.safetensors",
    "history": "history.parquet",
    "predictions": "predictions.h5",
    "trajectory": "trajectory.h5",
    "natural": f"features/{KNN_DATASET}.h5",
}
# What rule finetune and its batch rules pass besides the runs' definition and their datasets' CKA sample sizes (one
# dict: they cannot drift apart).
FINETUNE_PARAMS = dict(
    recipe=RECIPE,
    checkpoint_minutes=config["train"]["checkpoint_minutes"],
    feature_dtype=config["features"]["dtype"],
    knn_splits=knn_splits(KNN_DATASET),
    feature_batch_size=config["features"]["batch_size"],
)


rule finetune:
    input:
        weights=lambda wc: weights_file(wc.backbone),
        manifest=manifest("{dataset}"),
        natural=manifest(KNN_DATASET),
    output:
        **{kind: f"{RUN_DIR}/{file}" for kind, file in FINETUNE_OUTPUTS.items()},
    log:
        f"results/logs/finetune/{RUN}.log",
    benchmark:
        f"results/benchmarks/finetune/{RUN}.tsv"
    wildcard_constraints:
        method="|".join(TRAINED_METHODS),
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        gpu=1,
    params:
        **FINETUNE_PARAMS,
        # The run's own dataset's CKA sample size: changing one dataset's re-runs only its runs.
        cka_samples=lambda wc: cka_samples(wc.dataset),
        # Only the run's own method's strengths: changing one method's re-runs only its runs.
        backbone=lambda wc: backbone_cfg(wc.backbone),
        method_options=lambda wc: method_options(wc.method),
    script:
        "../workflow/scripts/finetune.py"


# train.runs_per_job > 1: the runs of one backbone, method and pool trained in one process, a rule per group of
# runs (common.smk TRAINING_BATCHES). Same script, outputs and per-run logs as rules finetune and linear_probe;
# with no wildcards, these rules take their runs over from them (Snakemake prefers a rule without wildcards).
for batch_name, batch, batch_runs in TRAINING_BATCHES:
    single = "linear_probe" if batch["method"] == "linear" else "finetune"
    batch_outputs = {
        kind: file
        for kind, file in FINETUNE_OUTPUTS.items()
        if kind != "natural" or batch["method"] != "linear"
    }

    # Longest first: a large chunk started last would finish alone while the other core idles.
    rule:
        name:
            batch_name
        input:
            **{
                f"manifest_{i}": manifest(r["dataset"])
                for i, r in enumerate(batch_runs)
            },
            **{
                "natural": manifest(KNN_DATASET)
                for kind in batch_outputs
                if kind == "natural"
            },
            weights=weights_file(batch["backbone"]),
        output:
            **{
                f"{kind}_{i}": f"results/runs/{r['run']}/{file}"
                for i, r in enumerate(batch_runs)
                for kind, file in batch_outputs.items()
            },
        log:
            **{
                f"run_{i}": f"results/logs/finetune/{r['run']}.log"
                for i, r in enumerate(batch_runs)
            },
        benchmark:
            f"results/benchmarks/{single}/{batch_name}.tsv"
        priority: len(batch_runs)
        conda:
            "../envs/torch.yaml"
        threads: 1
        resources:
            gpu=1,
        params:
            **{**FINETUNE_PARAMS, "recipe": run_recipe(batch["method"])},
            seeds=[int(r["seed"]) for r in batch_runs],
            # Per run, as seeds: a chunk can hold runs of several datasets.
            cka_samples=[cka_samples(r["dataset"]) for r in batch_runs],
            method=batch["method"],
            pool=batch["pool"],
            backbone=backbone_cfg(batch["backbone"]),
            method_options=method_options(batch["method"]),
        script:
            "../workflow/scripts/finetune.py"


rule linear_probe:
    input:
        weights=lambda wc: weights_file(wc.backbone),
        manifest=manifest("{dataset}"),
    output:
        model=f"{RUN_DIR}/model.safetensors",
        history=f"{RUN_DIR}/history.parquet",
        predictions=f"{RUN_DIR}/predictions.h5",
        trajectory=f"{RUN_DIR}/trajectory.h5",
    log:
        f"results/logs/finetune/{RUN}.log",
    benchmark:
        f"results/benchmarks/linear_probe/{RUN}.tsv"
    wildcard_constraints:
        method="linear",
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        gpu=1,
    params:
        backbone=lambda wc: backbone_cfg(wc.backbone),
        # train.linear_probe's epochs and lr where set: the Linear runs' own recipe.
        recipe=run_recipe("linear"),
        checkpoint_minutes=config["train"]["checkpoint_minutes"],
        cka_samples=lambda wc: cka_samples(wc.dataset),
        feature_dtype=config["features"]["dtype"],
    script:
        "../workflow/scripts/finetune.py"
