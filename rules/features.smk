# The pre-trained backbones' feature files (HDF5), holding what is measured, nothing more: final representations of
# the k-NN dataset (bank and queries) and layer-wise features of each target dataset's CKA sample (the reference of
# every run's trajectory). A fine-tuned model's feature files are written by its fine-tuning job (rule finetune).


rule pretrained_features:
    input:
        weights=lambda wc: weights_file(wc.backbone),
        manifest=manifest(KNN_DATASET),
    output:
        features=pretrained_features("{backbone}", KNN_DATASET),
    log:
        "results/logs/pretrained_features/{backbone}.log",
    benchmark:
        "results/benchmarks/pretrained_features/{backbone}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        gpu=1,
    params:
        backbone=lambda wc: backbone_cfg(wc.backbone),
        final_splits=knn_splits(KNN_DATASET),
        pools=POOLS_USED,
        batch_size=config["features"]["batch_size"],
        dtype=config["features"]["dtype"],
    script:
        "../workflow/scripts/pretrained_features.py"


# One job per backbone for every target dataset: each file is the CKA sample only (seconds of work).
rule cka_references:
    input:
        weights=lambda wc: weights_file(wc.backbone),
        manifests=[manifest(dataset) for dataset in TARGETS_USED],
    output:
        references=[cka_reference("{backbone}", dataset) for dataset in TARGETS_USED],
    log:
        "results/logs/cka_references/{backbone}.log",
    benchmark:
        "results/benchmarks/cka_references/{backbone}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        gpu=1,
    params:
        backbone=lambda wc: backbone_cfg(wc.backbone),
        cka_samples=config["cka"]["samples"],
        pools=POOLS_USED,
        batch_size=config["features"]["batch_size"],
        dtype=config["features"]["dtype"],
    script:
        "../workflow/scripts/cka_references.py"
