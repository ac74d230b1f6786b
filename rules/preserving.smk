# Similarity-preserving fine-tuning beyond the paper: WiSE-FT's derived runs (l2sp, lpft, rift and feature_cka are
# trained by rule finetune) and the trade-off and early-prediction analyses (repdrift.preserving, .wiseft, .tradeoff).


WISEFT_OUTPUTS = {
    "models": "model.safetensors",
    "histories": "history.parquet",
    "predictions": "predictions.h5",
    "trajectories": "trajectory.h5",
    "naturals": f"features/{KNN_DATASET}.h5",
}

# What rule wiseft and its batch rules pass besides the runs' backbone, seeds and datasets' CKA sample sizes.
WISEFT_PARAMS = dict(
    alphas=config["preserving"]["wiseft"]["alphas"],
    methods=WISEFT_METHODS,
    epochs=config["train"]["epochs"],
    batch_size=config["features"]["batch_size"],
    feature_dtype=config["features"]["dtype"],
    knn_splits=knn_splits(KNN_DATASET),
)


# WiSE-FT: every a of the weight-space ensemble of one seed's Linear probe (theta0) and the LP-FT run started from it
# (theta1), head included, by one job (no training; repdrift.wiseft). The wildcards are the LP-FT run's.
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
    resources:
        gpu=1,
    params:
        **WISEFT_PARAMS,
        cka_samples=lambda wc: cka_samples(wc.dataset),
        backbone=lambda wc: backbone_cfg(wc.backbone),
    script:
        "../workflow/scripts/wiseft.py"


# train.runs_per_job > 1: the WiSE-FT runs of several LP-FT runs of one backbone and pool in one process (common.smk
# WISEFT_BATCHES); rules without wildcards, so Snakemake prefers them to rule wiseft. One log per LP-FT run.
for batch_name, batch, fulls in WISEFT_BATCHES:
    # The runs each ensemble starts and ends at and its derived runs, per (dataset, seed) of the batch:
    # {method: results/runs/{run}}.
    batch_dirs = [
        {
            method: f"results/runs/{RUN.format(**{**full, 'method': method})}"
            for method in ["linear", "lpft"] + WISEFT_METHODS
        }
        for full in fulls
    ]

    rule:
        name:
            batch_name
        input:
            **{
                f"{end}_{i}": f"{dirs[method]}/model.safetensors"
                for i, dirs in enumerate(batch_dirs)
                for end, method in (("probe", "linear"), ("lpft", "lpft"))
            },
            **{f"manifest_{i}": manifest(f["dataset"]) for i, f in enumerate(fulls)},
            natural=manifest(KNN_DATASET),
        output:
            **{
                f"{kind}_{i}": [f"{dirs[m]}/{name}" for m in WISEFT_METHODS]
                for i, dirs in enumerate(batch_dirs)
                for kind, name in WISEFT_OUTPUTS.items()
            },
        log:
            **{
                f"run_{i}": "results/logs/wiseft/{dataset}/{backbone}/{pool}/seed{seed}.log".format(
                    **f
                )
                for i, f in enumerate(fulls)
            },
        benchmark:
            f"results/benchmarks/wiseft/{batch_name}.tsv"
        conda:
            "../envs/torch.yaml"
        threads: 1
        resources:
            gpu=1,
        params:
            **WISEFT_PARAMS,
            seeds=[int(f["seed"]) for f in fulls],
            cka_samples=[cka_samples(f["dataset"]) for f in fulls],  # per run, as seeds
            backbone=backbone_cfg(batch["backbone"]),
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
        # WiSE-FT's candidate a for the verdicts, fixed in advance (never picked on test scores).
        verdict_wiseft=wiseft_method(config["preserving"]["wiseft"]["verdict_alpha"]),
    script:
        "../workflow/scripts/tradeoff.py"
