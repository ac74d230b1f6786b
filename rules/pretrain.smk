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
    resources:
        gpu=1,
    params:
        backbone=lambda wc: backbone_cfg(wc.backbone),
        recipe=config["pretrain"],
    script:
        "../workflow/scripts/pretrain_demo.py"
