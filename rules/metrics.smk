# Per-run measurements, one job per run (each takes seconds, less than starting a process): CKA to the pre-trained
# model, k-NN forgetting and natural-domain calibration, target-domain calibration, task performance. And the
# pre-trained backbones' k-NN, the forgetting baseline.


rule measure:
    input:
        trajectory=f"{RUN_DIR}/trajectory.h5",
        reference=lambda wc: cka_reference(wc.backbone, wc.dataset),
        natural=lambda wc: run_features(wc, KNN_DATASET),
        predictions=f"{RUN_DIR}/predictions.h5",
    output:
        cka=f"{RUN_DIR}/cka.parquet",
        knn=f"{RUN_DIR}/knn.parquet",
        calibration=f"{RUN_DIR}/calibration.parquet",
        reliability=f"{RUN_DIR}/reliability.parquet",
        classification=f"{RUN_DIR}/classification.parquet",
    log:
        f"results/logs/measure/{RUN}.log",
    benchmark:
        f"results/benchmarks/measure/{RUN}.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        pool="{pool}",
        ks=sorted({config["knn"]["k"], *config["knn"]["ks"]}),
        temperature=config["knn"]["temperature"],
        n_bins=config["calibration"]["n_bins"],
        measures=config["similarity"]["measures"],
        mutual_k=config["similarity"]["mutual_knn_k"],
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
