# Figures: Altair charts as self-contained HTML (interactive) + SVG (static), each with a caption stating its numbers.


rule figure_cka_trajectory:
    input:
        trajectories="results/tables/trajectories.parquet",
        grids="results/tables/grids.parquet",
    output:
        **figure_outputs("cka_trajectory", "Similarity trajectory"),
    log:
        "results/logs/figures/cka_trajectory.log",
    conda:
        "../envs/cpu.yaml"
    params:
        grid=config["analysis"]["similarity_grid"],
    script:
        "../workflow/scripts/figure_cka_trajectory.py"


rule figure_cka_heatmap:
    input:
        trajectories="results/tables/trajectories.parquet",
        grids="results/tables/grids.parquet",
    output:
        **figure_outputs("cka_heatmap", "Similarity trajectory"),
    log:
        "results/logs/figures/cka_heatmap.log",
    conda:
        "../envs/cpu.yaml"
    params:
        grid=config["analysis"]["similarity_grid"],
    script:
        "../workflow/scripts/figure_cka_heatmap.py"


rule figure_cka_distribution:
    input:
        runs="results/tables/runs.parquet",
        grids="results/tables/grids.parquet",
    output:
        **figure_outputs("cka_distribution", "Similarity distribution"),
    log:
        "results/logs/figures/cka_distribution.log",
    conda:
        "../envs/cpu.yaml"
    params:
        grid=config["analysis"]["similarity_grid"],
        layer=config["analysis"]["cka_layer"],
    script:
        "../workflow/scripts/figure_cka_distribution.py"


rule figure_cka_vs_score:
    input:
        runs="results/tables/runs.parquet",
    output:
        **figure_outputs("cka_vs_score", "Similarity space"),
    log:
        "results/logs/figures/cka_vs_score.log",
    conda:
        "../envs/cpu.yaml"
    script:
        "../workflow/scripts/figure_cka_vs_score.py"


rule figure_similarity_space:
    input:
        space="results/analysis/similarity_space.parquet",
    output:
        **figure_outputs("similarity_space", "Similarity space"),
    log:
        "results/logs/figures/similarity_space.log",
    conda:
        "../envs/cpu.yaml"
    params:
        eta=config["analysis"]["eta"],
        eps=config["analysis"]["eps"],
    script:
        "../workflow/scripts/figure_similarity_space.py"


rule figure_correlation:
    input:
        runs="results/tables/runs.parquet",
        fits="results/analysis/correlation.csv",
    output:
        **figure_outputs("correlation", "Correlation"),
    log:
        "results/logs/figures/correlation.log",
    conda:
        "../envs/cpu.yaml"
    params:
        layer=config["analysis"]["cka_layer"],
        metrics=[f"knn@{config['knn']['k']}", "ece"],
        n_intervals=config["analysis"]["n_intervals"],
        outliers=config["analysis"]["outliers"],
    script:
        "../workflow/scripts/figure_correlation.py"


rule figure_knn_forgetting:
    input:
        runs="results/tables/runs.parquet",
        pretrained="results/tables/pretrained.parquet",
    output:
        **figure_outputs("knn_forgetting", "Forgetting"),
    log:
        "results/logs/figures/knn_forgetting.log",
    conda:
        "../envs/cpu.yaml"
    params:
        k=config["knn"]["k"],
    script:
        "../workflow/scripts/figure_knn_forgetting.py"


rule attention_maps:
    input:
        weights=lambda wc: weights_file(wc.backbone),
        model=lambda wc: attention_model(wc.backbone),
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
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        gpu=1,
    params:
        backbone=lambda wc: backbone_cfg(wc.backbone),
        n_images=config["analysis"]["attention"]["images"],
        run=lambda wc: attention_run(wc.backbone),
    script:
        "../workflow/scripts/attention_maps.py"
