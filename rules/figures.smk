# Figures: Altair charts, self-contained HTML (interactive) + SVG (static), annotated for the report.


rule figure_cka_trajectory:
    input:
        trajectories="results/tables/trajectories.parquet",
        grids="results/tables/grids.parquet",
    output:
        **figure_outputs("cka_trajectory", "Similarity trajectory", "cka_trajectory"),
    log:
        "results/logs/figures/cka_trajectory.log",
    conda:
        "../envs/cpu.yaml"
    params:
        grid=config["analysis"]["similarity_grid"],
    script:
        "../workflow/scripts/figure_cka_trajectory.py"


rule figure_cka_vs_score:
    input:
        runs="results/tables/runs.parquet",
    output:
        **figure_outputs("cka_vs_score", "Similarity and performance", "cka_vs_score"),
    log:
        "results/logs/figures/cka_vs_score.log",
    conda:
        "../envs/cpu.yaml"
    script:
        "../workflow/scripts/figure_cka_vs_score.py"


rule figure_knn_forgetting:
    input:
        runs="results/tables/runs.parquet",
        pretrained="results/tables/pretrained.parquet",
    output:
        **figure_outputs("knn_forgetting", "Forgetting", "knn_forgetting"),
    log:
        "results/logs/figures/knn_forgetting.log",
    conda:
        "../envs/cpu.yaml"
    params:
        k=config["knn"]["k"],
    script:
        "../workflow/scripts/figure_knn_forgetting.py"
