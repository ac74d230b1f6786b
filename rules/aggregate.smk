# Per-run tables -> the study's long-format tables. Runs recorded as failed (repdrift.study.failures) are left out and
# listed in grids.parquet with their message.


rule aggregate:
    input:
        classification=run_files("classification.parquet"),
        calibration=run_files("calibration.parquet"),
        knn=run_files("knn.parquet"),
        cka=run_files("cka.parquet"),
        history=run_files("history.parquet"),
        # Trained runs only: a Linear probe keeps its backbone; a WiSE-FT run changes a x its LP-FT run (same rank).
        weight_change=run_files("weight_change.parquet", WEIGHT_CHANGE_KINDS),
        datasets=[manifest(dataset) for dataset in TARGETS_USED],
        pretrained_knn=expand(
            "results/pretrained/{backbone}/knn_{pool}.parquet",
            backbone=BACKBONES_USED,
            pool=POOLS_USED,
        ),
    output:
        runs="results/tables/runs.parquet",
        trajectories="results/tables/trajectories.parquet",
        pretrained="results/tables/pretrained.parquet",
        grids="results/tables/grids.parquet",
        weight_change="results/tables/weight_change.parquet",
    log:
        "results/logs/aggregate.log",
    benchmark:
        "results/benchmarks/aggregate.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        runs=[{"run": run, **info.wildcards} for run, info in DONE_RUNS.items()],
        # Every run of the study, failed ones included: what the config asked for.
        study=[
            {"run": run, **info.wildcards, "grids": list(info.grids)}
            for run, info in RUNS.items()
        ],
        datasets=TARGETS_USED,
        failed=FAILED,
        change_runs=[
            {"run": run, **RUNS[run].wildcards}
            for run in done_runs(WEIGHT_CHANGE_KINDS)
        ],
        change_energy=config["analysis"]["change_energy"],
    script:
        "../workflow/scripts/aggregate.py"
