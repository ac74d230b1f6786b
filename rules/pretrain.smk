# Backbone weights: the demo pre-trains its own tiny backbones on the natural stand-in.


# Every job of a backbone waits for its weights: start them first (Snakemake runs higher priorities first).
rule pretrain_demo:
    input:
        manifest=manifest(PRETRAIN_DATASET),
    output:
        weights="results/pretrained/{backbone}/weights.safetensors",
        history="results/pretrained/{backbone}/pretrain_history.parquet",
    log:
        "results/logs/pretrain_demo/{backbone}.log",
    benchmark:
        "results/benchmarks/pretrain_demo/{backbone}.tsv"
    priority: 100
    conda:
        "../envs/torch.yaml"
    threads: 1
    # Tiny backbones: 1.3 GB and 17 s on one CPU core each (the demo, benchmarks in the README).
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=30,
    params:
        backbone=lambda wc: STUDY.backbone(wc.backbone),
        recipe=config["pretrain"],
    script:
        "../workflow/scripts/pretrain_demo.py"
