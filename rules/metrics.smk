# Per-run measurements: CKA to the pre-trained model, k-NN forgetting and natural-domain calibration, target-domain
# calibration, task performance.


rule cka:
    input:
        pretrained=lambda wc: pretrained_features(wc.backbone, wc.dataset),
        trajectory=f"{RUN_DIR}/trajectory.h5",
    output:
        cka=f"{RUN_DIR}/cka.parquet",
    log:
        f"results/logs/cka/{RUN}.log",
    conda:
        "../envs/cpu.yaml"
    script:
        "../workflow/scripts/cka.py"


rule knn:
    input:
        features=lambda wc: run_features(wc, KNN_DATASET),
    output:
        knn=f"{RUN_DIR}/knn.parquet",
    log:
        f"results/logs/knn/{RUN}.log",
    conda:
        "../envs/cpu.yaml"
    params:
        pool="{pool}",
        k=config["knn"]["k"],
        ks=config["knn"]["ks"],
        temperature=config["knn"]["temperature"],
        n_bins=config["calibration"]["n_bins"],
    script:
        "../workflow/scripts/knn.py"


rule knn_pretrained:
    input:
        features=pretrained_features("{backbone}", KNN_DATASET),
    output:
        knn="results/pretrained/{backbone}/knn_{pool}.parquet",
    log:
        "results/logs/knn_pretrained/{backbone}_{pool}.log",
    conda:
        "../envs/cpu.yaml"
    params:
        pool="{pool}",
        k=config["knn"]["k"],
        ks=config["knn"]["ks"],
        temperature=config["knn"]["temperature"],
        n_bins=config["calibration"]["n_bins"],
    script:
        "../workflow/scripts/knn.py"


rule calibration:
    input:
        predictions=f"{RUN_DIR}/predictions.h5",
    output:
        calibration=f"{RUN_DIR}/calibration.parquet",
        reliability=f"{RUN_DIR}/reliability.parquet",
    log:
        f"results/logs/calibration/{RUN}.log",
    conda:
        "../envs/cpu.yaml"
    params:
        n_bins=config["calibration"]["n_bins"],
    script:
        "../workflow/scripts/calibration.py"


rule classification:
    input:
        predictions=f"{RUN_DIR}/predictions.h5",
    output:
        classification=f"{RUN_DIR}/classification.parquet",
    log:
        f"results/logs/classification/{RUN}.log",
    conda:
        "../envs/cpu.yaml"
    script:
        "../workflow/scripts/classification.py"
