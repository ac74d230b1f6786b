# The pre-trained backbones' feature files (HDF5), holding what is measured, nothing more: final representations of
# the k-NN dataset (bank and queries) and layer-wise features of each target dataset's CKA sample (the reference of
# every run's trajectory). A fine-tuned model's feature files are written by its fine-tuning job (rule finetune).
# Adding a target dataset re-runs the backbone's k-NN extraction too (minutes on a GPU), for one job per backbone.


# One job per backbone, one model load: the k-NN file is the long part; each CKA reference takes seconds.
rule pretrained_features:
    input:
        weights=lambda wc: weights_file(wc.backbone),
        natural=manifest(KNN_DATASET),
        targets=[manifest(dataset) for dataset in TARGETS_USED],
    output:
        natural=pretrained_features("{backbone}", KNN_DATASET),
        references=[cka_reference("{backbone}", dataset) for dataset in TARGETS_USED],
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
        knn_splits=knn_splits(KNN_DATASET),
        # Parallel to targets / references: each dataset's own CKA sample size.
        cka_samples=[cka_samples(dataset) for dataset in TARGETS_USED],
        pools=POOLS_USED,
        batch_size=config["features"]["batch_size"],
        dtype=config["features"]["dtype"],
    script:
        "../workflow/scripts/pretrained_features.py"
