# Figures: Altair charts as self-contained HTML (interactive) + SVG (static), each with a caption stating its numbers.


# Fig. 4a: the similarity grid's trajectories.
rule figure_cka_trajectory:
    input:
        runs="results/tables/runs.parquet",
        trajectories="results/tables/trajectories.parquet",
        grids="results/tables/grids.parquet",
    output:
        **figure_outputs("cka_trajectory", "Similarity trajectory"),
    log:
        "results/logs/figures/cka_trajectory.log",
    benchmark:
        "results/benchmarks/figures/cka_trajectory.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        grid=config["analysis"]["similarity_grid"],
        similarity=SIMILARITY_METRIC,
        layer=config["analysis"]["cka_layer"],
    script:
        "../workflow/scripts/figure_cka_trajectory.py"


# Every layer's similarity per epoch, the similarity grid's runs.
rule figure_cka_heatmap:
    input:
        runs="results/tables/runs.parquet",
        trajectories="results/tables/trajectories.parquet",
        grids="results/tables/grids.parquet",
    output:
        **figure_outputs("cka_heatmap", "Similarity trajectory"),
    log:
        "results/logs/figures/cka_heatmap.log",
    benchmark:
        "results/benchmarks/figures/cka_heatmap.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        grid=config["analysis"]["similarity_grid"],
        similarity=SIMILARITY_METRIC,
    script:
        "../workflow/scripts/figure_cka_heatmap.py"


# Fig. 1b: final similarity across the similarity grid's seeds.
rule figure_cka_distribution:
    input:
        runs="results/tables/runs.parquet",
        grids="results/tables/grids.parquet",
    output:
        **figure_outputs("cka_distribution", "Similarity distribution"),
    log:
        "results/logs/figures/cka_distribution.log",
    benchmark:
        "results/benchmarks/figures/cka_distribution.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        grid=config["analysis"]["similarity_grid"],
        similarity=SIMILARITY_METRIC,
        layer=config["analysis"]["cka_layer"],
    script:
        "../workflow/scripts/figure_cka_distribution.py"


# Fig. 4b: final similarity against score, the similarity grid's runs.
rule figure_cka_vs_score:
    input:
        runs="results/tables/runs.parquet",
        grids="results/tables/grids.parquet",
    output:
        **figure_outputs("cka_vs_score", "Similarity space"),
    log:
        "results/logs/figures/cka_vs_score.log",
    benchmark:
        "results/benchmarks/figures/cka_vs_score.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        grid=config["analysis"]["similarity_grid"],
        similarity=SIMILARITY_METRIC,
        layer=config["analysis"]["cka_layer"],
    script:
        "../workflow/scripts/figure_cka_vs_score.py"


# T_X over every Full and Scratch run with a Linear partner (not only the similarity grid).
rule figure_similarity_space:
    input:
        runs="results/tables/runs.parquet",
        space="results/analysis/similarity_space.parquet",
    output:
        **figure_outputs("similarity_space", "Similarity space"),
    log:
        "results/logs/figures/similarity_space.log",
    benchmark:
        "results/benchmarks/figures/similarity_space.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        similarity=SIMILARITY_METRIC,
        layer=config["analysis"]["cka_layer"],
        divergence=config["analysis"]["divergence"],
        eta=config["analysis"]["eta"],
        eps=config["analysis"]["eps"],
    script:
        "../workflow/scripts/figure_similarity_space.py"


# Fig. 5: the interval fit of similarity against k-NN and ECE, the similarity grid's runs.
rule figure_correlation:
    input:
        runs="results/tables/runs.parquet",
        grids="results/tables/grids.parquet",
        fits="results/analysis/correlation.csv",
        points="results/analysis/correlation_points.parquet",
    output:
        **figure_outputs("correlation", "Correlation"),
    log:
        "results/logs/figures/correlation.log",
    benchmark:
        "results/benchmarks/figures/correlation.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        grid=config["analysis"]["similarity_grid"],
        similarity=SIMILARITY_METRIC,
        layer=config["analysis"]["cka_layer"],
        metrics=CORRELATION_METRICS,
        n_intervals=config["analysis"]["n_intervals"],
        outliers=config["analysis"]["outliers"],
        confidence=config["analysis"]["confidence"],
    script:
        "../workflow/scripts/figure_correlation.py"


# Fig. 1a: k-NN of the pre-trained models and of the similarity grid's runs.
rule figure_knn_forgetting:
    input:
        runs="results/tables/runs.parquet",
        pretrained="results/tables/pretrained.parquet",
        grids="results/tables/grids.parquet",
    output:
        **figure_outputs("knn_forgetting", "Forgetting"),
    log:
        "results/logs/figures/knn_forgetting.log",
    benchmark:
        "results/benchmarks/figures/knn_forgetting.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        grid=config["analysis"]["similarity_grid"],
        k=config["knn"]["k"],
        confidence=config["analysis"]["confidence"],
    script:
        "../workflow/scripts/figure_knn_forgetting.py"


rule attention_maps:
    input:
        weights=lambda wc: weights_file(wc.backbone),
        models=lambda wc: attention_models(wc.backbone),
        manifest=manifest(KNN_DATASET),
    output:
        png=report(
            "results/figures/attention/{backbone}.png",
            caption="../workflow/report/attention.rst",
            category="Attention maps",
            labels={"backbone": "{backbone}"},
        ),
    log:
        "results/logs/figures/attention_{backbone}.log",
    benchmark:
        "results/benchmarks/figures/attention_{backbone}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        gpu=1,
    params:
        backbone=lambda wc: backbone_cfg(wc.backbone),
        n_images=config["analysis"]["attention"]["images"],
        runs=lambda wc: list(attention_runs(wc.backbone).values()),
        pools=lambda wc: list(attention_runs(wc.backbone)),
    script:
        "../workflow/scripts/attention_maps.py"
