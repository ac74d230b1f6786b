# Similarity-preserving fine-tuning beyond the paper: WiSE-FT's derived runs (l2sp, lpft, rift and feature_cka are
# trained by rule finetune) and the trade-off and early-prediction analyses (repdrift.training.preserving, .wiseft, .tradeoff).
# WiSE-FT is the one method of kind `derived` (repdrift.study): one job per LP-FT run writes every a's run.


WISEFT_OUTPUTS = {
    "models": "model.safetensors",
    "histories": "history.parquet",
    "predictions": "predictions.h5",
    "trajectories": "trajectory.h5",
    "naturals": f"features/{KNN_DATASET}.h5",
}


# WiSE-FT: every a of the weight-space ensemble of one seed's Linear probe (theta0) and the LP-FT run started from it
# (theta1), head included, by one job (no training; repdrift.training.wiseft). The wildcards are the LP-FT run's.
rule wiseft:
    input:
        probe="results/runs/{dataset}/{backbone}/linear-{pool}/seed{seed}/model.safetensors",
        lpft="results/runs/{dataset}/{backbone}/lpft-{pool}/seed{seed}/model.safetensors",
        manifest=manifest("{dataset}"),
        natural=manifest(KNN_DATASET),
    output:
        **{kind: wiseft_files(name) for kind, name in WISEFT_OUTPUTS.items()},
    log:
        "results/logs/wiseft/{dataset}/{backbone}/{pool}/seed{seed}.log",
    benchmark:
        "results/benchmarks/wiseft/{dataset}/{backbone}/{pool}/seed{seed}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    # Per a, one test evaluation and one k-NN extraction (three a: three passes over ImageNet).
    resources:
        gpu=1,
        mem_mb=32000,
        runtime=240,
    params:
        alphas=config["preserving"]["wiseft"]["alphas"],
        methods=WISEFT_METHODS,
        epochs=config["train"]["epochs"],
        batch_size=config["features"]["batch_size"],
        feature_dtype=config["features"]["dtype"],
        knn_splits=knn_splits(KNN_DATASET),
        cka_samples=lambda wc: STUDY.cka_samples(wc.dataset),
        backbone=lambda wc: STUDY.backbone(wc.backbone),
    script:
        "../workflow/scripts/wiseft.py"


# The trade-off of each method against Full and the early prediction of forgetting, with their two figures, and the
# rank of the weight change per block of every trained method on the similarity grid's dataset and pool.
rule tradeoff:
    input:
        runs="results/tables/runs.parquet",
        trajectories="results/tables/trajectories.parquet",
        pretrained="results/tables/pretrained.parquet",
        grids="results/tables/grids.parquet",
        space="results/analysis/similarity_space.parquet",
        weight_change="results/tables/weight_change.parquet",
    output:
        **{
            f"{name}_{kind}": path
            for name in ("tradeoff", "early_prediction", "change_rank")
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
        peft_verdicts="results/analysis/peft_verdicts.csv",
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
        # The trade-off table and figure hold both grids' runs; each verdict reads its own grid ("": none).
        grid=PRESERVING_GRID or "",
        peft_grid=PEFT_GRID or "",
        similarity=SIMILARITY_METRIC,
        layer=config["analysis"]["cka_layer"],
        k=config["knn"]["k"],
        eta=config["analysis"]["eta"],
        eps=config["analysis"]["eps"],
        confidence=config["analysis"]["confidence"],
        # The change_rank figure's dataset and pool (one of each: checked in common.smk).
        similarity_grid=config["analysis"]["similarity_grid"],
        # WiSE-FT's candidate a for the verdicts, fixed in advance (never picked on test scores).
        verdict_wiseft=wiseft_method(config["preserving"]["wiseft"]["verdict_alpha"]),
    script:
        "../workflow/scripts/tradeoff.py"
