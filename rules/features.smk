# The pre-trained backbones' feature files (HDF5), one job per backbone and dataset, holding what is measured,
# nothing more: the final representations of the k-NN dataset (bank and queries) and every layer of a target
# dataset's CKA sample (the reference of every run's trajectory), in both pools. A fine-tuned model's feature files
# are written by its fine-tuning job (rule finetune). Adding a dataset adds its own jobs only.


rule pretrained_features:
    input:
        weights=lambda wc: weights_file(wc.backbone),
        manifest=manifest("{dataset}"),
    output:
        features=pretrained_features("{backbone}", "{dataset}"),
    log:
        "results/logs/pretrained_features/{backbone}/{dataset}.log",
    benchmark:
        "results/benchmarks/pretrained_features/{backbone}/{dataset}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    # Extraction streams to disk (memory does not grow with the images: benchmarks/bench_scale.py); what it holds
    # is the model and the loader workers' prefetched batches (256 images of 518 px are 0.8 GB each).
    resources:
        gpu=1,
        mem_mb=32000,
        runtime=120,
    params:
        backbone=lambda wc: STUDY.backbone(wc.backbone),
        final_splits=lambda wc: knn_splits(wc.dataset),
        cka_samples=lambda wc: reference_samples(wc.dataset),
        # Both pools, whichever the grids use: adding a grid never extracts again.
        pools=list(POOLS),
        batch_size=config["features"]["batch_size"],
        dtype=config["features"]["dtype"],
    script:
        "../workflow/scripts/pretrained_features.py"
