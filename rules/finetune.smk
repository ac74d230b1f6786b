# Fine-tuning: one job per run; writes weights, history, test predictions and, per epoch, the features of the CKA
# sample (the trajectory).
# It checkpoints every epoch in {run}/checkpoint/ (not an output) and resumes from there when killed and re-run.


rule finetune:
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
        f"results/benchmarks/finetune/{RUN}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        gpu=1,
    params:
        backbone=lambda wc: backbone_cfg(wc.backbone),
        recipe=config["train"],
        cka_samples=config["cka"]["samples"],
        feature_dtype=config["features"]["dtype"],
    script:
        "../workflow/scripts/finetune.py"
