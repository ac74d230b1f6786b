# Similarity-preserving fine-tuning beyond the paper: WiSE-FT's derived runs (l2sp, lpft, rift and feature_cka are
# trained by rule finetune) and the trade-off and early-prediction analyses (repdrift.preserving, .wiseft, .tradeoff).


# WiSE-FT: every a of one Full run's weight-space ensemble, by one job (no training; repdrift.wiseft).
rule wiseft:
    input:
        weights=lambda wc: weights_file(wc.backbone),
        full="results/runs/{dataset}/{backbone}/full-{pool}/seed{seed}/model.safetensors",
        manifest=manifest("{dataset}"),
        natural=manifest(KNN_DATASET),
    output:
        models=wiseft_files("model.safetensors"),
        histories=wiseft_files("history.parquet"),
        predictions=wiseft_files("predictions.h5"),
        trajectories=wiseft_files("trajectory.h5"),
        naturals=wiseft_files(f"features/{KNN_DATASET}.h5"),
    log:
        "results/logs/wiseft/{dataset}/{backbone}/{pool}/seed{seed}.log",
    benchmark:
        "results/benchmarks/wiseft/{dataset}/{backbone}/{pool}/seed{seed}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        gpu=1,
    params:
        backbone=lambda wc: backbone_cfg(wc.backbone),
        alphas=config["preserving"]["wiseft"]["alphas"],
        methods=WISEFT_METHODS,
        epochs=config["train"]["epochs"],
        batch_size=config["features"]["batch_size"],
        cka_samples=config["cka"]["samples"],
        feature_dtype=config["features"]["dtype"],
        knn_splits=knn_splits(KNN_DATASET),
    script:
        "../workflow/scripts/wiseft.py"


# The trade-off of each method against Full and the early prediction of forgetting, with their two figures.
rule tradeoff:
    input:
        runs="results/tables/runs.parquet",
        trajectories="results/tables/trajectories.parquet",
        pretrained="results/tables/pretrained.parquet",
        grids="results/tables/grids.parquet",
        space="results/analysis/similarity_space.parquet",
    output:
        **{
            f"{name}_{kind}": path
            for name in ("tradeoff", "early_prediction")
            for kind, path in figure_outputs(
                name, "Similarity-preserving fine-tuning"
            ).items()
        },
        table=report(
            "results/analysis/tradeoff.csv",
            caption="../workflow/report/tradeoff_table.rst",
            category="Similarity-preserving fine-tuning",
        ),
        verdicts="results/analysis/tradeoff_verdicts.csv",
        early=report(
            "results/analysis/early_prediction.csv",
            caption="../workflow/report/early_prediction_table.rst",
            category="Similarity-preserving fine-tuning",
        ),
    log:
        "results/logs/analysis/tradeoff.log",
    benchmark:
        "results/benchmarks/tradeoff.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        grid=config["analysis"]["preserving_grid"],
        similarity=SIMILARITY_METRIC,
        layer=config["analysis"]["cka_layer"],
        k=config["knn"]["k"],
        eta=config["analysis"]["eta"],
        eps=config["analysis"]["eps"],
        confidence=config["analysis"]["confidence"],
    script:
        "../workflow/scripts/tradeoff.py"
