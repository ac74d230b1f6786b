# Your own fine-tuned models: each entry of `external_models` is a run of the study (method `external`, kind
# `external` of repdrift.study) whose model comes from a file instead of training (repdrift.training.external). The
# import writes the files a fine-tune writes, so rule measure and every table read it as any run; a model the
# workflow itself writes (results/runs/.../model.safetensors) is made first.


rule import_external:
    input:
        model=lambda wc: external_entry(wc)[1]["path"],
        weights=lambda wc: weights_file(wc.backbone),
        manifest=manifest("{dataset}"),
        natural=manifest(KNN_DATASET),
    output:
        model=f"{RUN_DIR}/model.safetensors",
        history=f"{RUN_DIR}/history.parquet",
        predictions=f"{RUN_DIR}/predictions.h5",
        trajectory=f"{RUN_DIR}/trajectory.h5",
        natural=f"{RUN_DIR}/features/{KNN_DATASET}.h5",
    log:
        f"results/logs/import_external/{RUN}.log",
    benchmark:
        f"results/benchmarks/import_external/{RUN}.tsv"
    wildcard_constraints:
        method="|".join(methods_of("external")),
    conda:
        "../envs/torch.yaml"
    threads: 1
    # Forward passes only: the test split and the k-NN dataset, once each (sized as wiseft's, which does that per a).
    resources:
        gpu=1,
        mem_mb=32000,
        runtime=120,
    params:
        entry=lambda wc: external_entry(wc)[1],
        key=lambda wc: f"external_models[{external_entry(wc)[0]}]",
        # The test split is evaluated as a fine-tune evaluates it: the same images per batch, the same numbers.
        batch_size=config["train"]["batch_size"],
        feature_batch_size=config["features"]["batch_size"],
        feature_dtype=config["features"]["dtype"],
        knn_splits=knn_splits(KNN_DATASET),
        cka_samples=lambda wc: STUDY.cka_samples(wc.dataset),
        backbone=lambda wc: STUDY.backbone(wc.backbone),
    script:
        "../workflow/scripts/import_external.py"
