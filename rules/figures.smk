# Figures: Altair charts as self-contained HTML (interactive) + SVG (static), each with a caption stating its numbers.
# One job draws them all (seconds each, less than starting a process and the SVG renderer).
rule figures:
    input:
        runs="results/tables/runs.parquet",
        trajectories="results/tables/trajectories.parquet",
        pretrained="results/tables/pretrained.parquet",
        grids="results/tables/grids.parquet",
        space="results/analysis/similarity_space.parquet",
        fits="results/analysis/correlation.csv",
        points="results/analysis/correlation_points.parquet",
    output:
        **{
            f"{name}_{kind}": path
            for name, category in FIGURE_CATEGORIES.items()
            for kind, path in figure_outputs(name, category).items()
        },
    log:
        "results/logs/figures/figures.log",
    benchmark:
        "results/benchmarks/figures.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        grid=config["analysis"]["similarity_grid"],
        similarity=SIMILARITY_METRIC,
        layer=config["analysis"]["cka_layer"],
        divergence=config["analysis"]["divergence"],
        eta=config["analysis"]["eta"],
        eps=config["analysis"]["eps"],
        metrics=CORRELATION_METRICS,
        fit_rule=FIT_RULE,
        confidence=config["analysis"]["confidence"],
        k=config["knn"]["k"],
    script:
        "../workflow/scripts/figures.py"


# Fig. 3: one attention sheet per backbone (pre-trained beside its fine-tuned runs), all drawn by one job.
rule attention_maps:
    input:
        weights=[weights_file(backbone) for backbone in ATTENTION_BACKBONES],
        models=[attention_models(backbone) for backbone in ATTENTION_BACKBONES],
        manifest=manifest(KNN_DATASET),
    output:
        pngs=[
            report(
                f"results/figures/attention/{backbone}.png",
                caption=os.path.abspath(f"results/figures/attention/{backbone}.rst"),
                category="Attention maps",
                labels={"backbone": backbone},
            )
            for backbone in ATTENTION_BACKBONES
        ],
        captions=[
            f"results/figures/attention/{backbone}.rst"
            for backbone in ATTENTION_BACKBONES
        ],
    log:
        "results/logs/figures/attention_maps.log",
    benchmark:
        "results/benchmarks/attention_maps.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    # Forward passes of a few images per model (the demo's job: 5 s, 1.1 GB on CPU).
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=30,
    params:
        backbones=[STUDY.backbone(backbone) for backbone in ATTENTION_BACKBONES],
        n_images=config["analysis"]["attention"]["images"],
        pools=[list(attention_runs(backbone)) for backbone in ATTENTION_BACKBONES],
        runs=[
            list(attention_runs(backbone).values()) for backbone in ATTENTION_BACKBONES
        ],
        failed=[failed_attention_runs(backbone) for backbone in ATTENTION_BACKBONES],
    script:
        "../workflow/scripts/attention_maps.py"
