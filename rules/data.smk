# Raw data -> manifest. The demo's raw data is generated offline in each real dataset's own format.


rule make_demo_data:
    output:
        root=directory(config["demo"]["root"]),
    log:
        "results/logs/make_demo_data.log",
    benchmark:
        "results/benchmarks/make_demo_data.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        seed=config["demo"]["seed"],
        options=config["demo"]["options"],
    script:
        "../workflow/scripts/make_demo_data.py"


rule prepare_dataset:
    input:
        demo=demo_input,
    output:
        manifest="results/data/{dataset}/manifest.parquet",
        classes="results/data/{dataset}/classes.json",
    log:
        "results/logs/prepare_dataset/{dataset}.log",
    benchmark:
        "results/benchmarks/prepare_dataset/{dataset}.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        kind=lambda wc: config["datasets"][wc.dataset]["kind"],
        root=lambda wc: config["datasets"][wc.dataset]["root"],
        options=lambda wc: config["datasets"][wc.dataset].get("options", {}),
    script:
        "../workflow/scripts/prepare_dataset.py"
