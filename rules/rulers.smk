# Does the answer depend on the ruler? The similarity measures beside CKA on the similarity grid's runs: their
# agreement, which predicts forgetting, calibration and the score, and the paper's correlation conclusion per measure.


rule rulers:
    input:
        runs="results/tables/runs.parquet",
        pretrained="results/tables/pretrained.parquet",
        grids="results/tables/grids.parquet",
    output:
        **{
            f"{name}_{kind}": path
            for name in ("agreement", "rulers")
            for kind, path in figure_outputs(name, "Similarity measures").items()
        },
        agreement=report(
            "results/analysis/agreement.csv",
            caption="../workflow/report/agreement_table.rst",
            category="Similarity measures",
        ),
        rulers=report(
            "results/analysis/rulers.csv",
            caption="../workflow/report/rulers_table.rst",
            category="Similarity measures",
        ),
        conclusion="results/analysis/rulers_conclusion.csv",
    log:
        "results/logs/analysis/rulers.log",
    benchmark:
        "results/benchmarks/rulers.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        grid=config["analysis"]["similarity_grid"],
        layer=config["analysis"]["cka_layer"],
        k=config["knn"]["k"],
        fit_rule=FIT_RULE,
        confidence=config["analysis"]["confidence"],
        n_bootstrap=1000,
        # Stated in the captions.
        rbf_bandwidth=config["similarity"]["rbf_bandwidth"],
        mutual_k=config["similarity"]["mutual_knn_k"],
        mutual_clip=config["similarity"]["mutual_knn_clip"],
        paradigms={name: b["paradigm"] for name, b in config["backbones"].items()},
    script:
        "../workflow/scripts/rulers.py"
