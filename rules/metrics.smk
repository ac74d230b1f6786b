# Per-run measurements, one job per run (each takes seconds, less than starting a process; several runs to a job
# with train.runs_per_job): CKA to the pre-trained model, k-NN forgetting and natural-domain calibration,
# target-domain calibration, task performance. And the pre-trained backbones' k-NN, the forgetting baseline.

MEASURE_OUTPUTS = ("cka", "knn", "calibration", "reliability", "classification")
# What rule measure and its batch rules pass besides the pool.
MEASURE_PARAMS = dict(
    ks=sorted({config["knn"]["k"], *config["knn"]["ks"]}),
    temperature=config["knn"]["temperature"],
    n_bins=config["calibration"]["n_bins"],
    measures=config["similarity"]["measures"],
    mutual_k=config["similarity"]["mutual_knn_k"],
    mutual_clip=config["similarity"]["mutual_knn_clip"],
    rbf_bandwidth=config["similarity"]["rbf_bandwidth"],
)


rule measure:
    input:
        trajectory=f"{RUN_DIR}/trajectory.h5",
        reference=lambda wc: cka_reference(wc.backbone, wc.dataset),
        natural=lambda wc: run_features(wc, KNN_DATASET),
        predictions=f"{RUN_DIR}/predictions.h5",
    output:
        **{kind: f"{RUN_DIR}/{kind}.parquet" for kind in MEASURE_OUTPUTS},
    log:
        f"results/logs/measure/{RUN}.log",
    benchmark:
        f"results/benchmarks/measure/{RUN}.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        **MEASURE_PARAMS,
        pool="{pool}",
    script:
        "../workflow/scripts/measure.py"


# train.runs_per_job > 1: the measurements of several runs of one backbone, method and pool in one process
# (common.smk MEASURE_BATCHES; rules without wildcards, which Snakemake prefers to rule measure).
for batch_name, batch, batch_runs in MEASURE_BATCHES:

    rule:
        name:
            batch_name
        input:
            **{
                f"{kind}_{i}": path
                for i, r in enumerate(batch_runs)
                for kind, path in dict(
                    trajectory=f"results/runs/{r['run']}/trajectory.h5",
                    reference=cka_reference(r["backbone"], r["dataset"]),
                    natural=run_features(r, KNN_DATASET),
                    predictions=f"results/runs/{r['run']}/predictions.h5",
                ).items()
            },
        output:
            **{
                f"{kind}_{i}": f"results/runs/{r['run']}/{kind}.parquet"
                for i, r in enumerate(batch_runs)
                for kind in MEASURE_OUTPUTS
            },
        log:
            **{
                f"run_{i}": f"results/logs/measure/{r['run']}.log"
                for i, r in enumerate(batch_runs)
            },
        benchmark:
            f"results/benchmarks/measure/{batch_name}.tsv"
        conda:
            "../envs/cpu.yaml"
        params:
            **MEASURE_PARAMS,
            runs=len(batch_runs),
            pool=batch["pool"],
        script:
            "../workflow/scripts/measure.py"


rule knn_pretrained:
    input:
        features=pretrained_features("{backbone}", KNN_DATASET),
    output:
        knn="results/pretrained/{backbone}/knn_{pool}.parquet",
    log:
        "results/logs/knn_pretrained/{backbone}_{pool}.log",
    benchmark:
        "results/benchmarks/knn_pretrained/{backbone}_{pool}.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        pool="{pool}",
        ks=sorted({config["knn"]["k"], *config["knn"]["ks"]}),
        temperature=config["knn"]["temperature"],
        n_bins=config["calibration"]["n_bins"],
    script:
        "../workflow/scripts/knn.py"
