# Fine-tuning: one job per run. It writes the weights, history, test predictions and, per epoch, the features of
# the CKA sample (the trajectory). A method that changes the backbone (repdrift.study kind `trained`: Full, Scratch,
# l2sp, lpft, rift, feature_cka, lora, bitfit, partial) also extracts its final model's k-NN features in the same job:
# one model load, one process and one GPU allocation per run (changing the k-NN dataset therefore re-runs them), and
# writes the spectrum of its block matrices' change since it started (weight_change.parquet). A Linear probe
# (kind `probe`, rule linear_probe) leaves the backbone as it was: its k-NN reads the pre-trained model's features.
# A job checkpoints in {run}/checkpoint/ (not an output; train.checkpoint_minutes) and resumes from there when
# killed and re-run.


# Each run reads only its own dataset's CKA sample size, backbone and method options: changing one re-runs only the
# runs that read it.
rule finetune:
    input:
        weights=lambda wc: weights_file(wc.backbone),
        manifest=manifest("{dataset}"),
        natural=manifest(KNN_DATASET),
    output:
        model=f"{RUN_DIR}/model.safetensors",
        history=f"{RUN_DIR}/history.parquet",
        predictions=f"{RUN_DIR}/predictions.h5",
        trajectory=f"{RUN_DIR}/trajectory.h5",
        natural=f"{RUN_DIR}/features/{KNN_DATASET}.h5",
        # The spectrum of each block matrix's change since the run started (repdrift.measurement.weight_change).
        weight_change=f"{RUN_DIR}/weight_change.parquet",
    log:
        f"results/logs/finetune/{RUN}.log",
    benchmark:
        f"results/benchmarks/finetune/{RUN}.tsv"
    wildcard_constraints:
        method="|".join(method_pattern(m) for m in methods_of("trained")),
    conda:
        "../envs/torch.yaml"
    threads: 1
    # Sized for config/paper.yaml's ViT-B models on one A100 (DINOv2 at 518 px is the longest; not measured on a
    # GPU here, see benchmarks/README.md); a demo run peaks at 1.2 GB on CPU. Locally only --resources limits them.
    resources:
        gpu=1,
        mem_mb=64000,
        runtime=480,
    params:
        recipe=lambda wc: STUDY.run_recipe(wc.method),
        checkpoint_minutes=config["train"]["checkpoint_minutes"],
        feature_dtype=config["features"]["dtype"],
        knn_splits=knn_splits(KNN_DATASET),
        feature_batch_size=config["features"]["batch_size"],
        cka_samples=lambda wc: STUDY.cka_samples(wc.dataset),
        backbone=lambda wc: STUDY.backbone(wc.backbone),
        method_options=lambda wc: STUDY.method_options(wc.method),
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
        method="|".join(methods_of("probe")),
    conda:
        "../envs/torch.yaml"
    threads: 1
    # A frozen backbone: forward passes only (sized as finetune's).
    resources:
        gpu=1,
        mem_mb=32000,
        runtime=240,
    params:
        # train.linear_probe's epochs and lr where set: the Linear runs' own recipe.
        recipe=lambda wc: STUDY.run_recipe(wc.method),
        checkpoint_minutes=config["train"]["checkpoint_minutes"],
        feature_dtype=config["features"]["dtype"],
        cka_samples=lambda wc: STUDY.cka_samples(wc.dataset),
        backbone=lambda wc: STUDY.backbone(wc.backbone),
    script:
        "../workflow/scripts/finetune.py"
