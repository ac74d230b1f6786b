# Per-run measurements, one job per run (torch-free: ~0.5 s of imports, then seconds of work): CKA and the other
# similarity measures to the pre-trained model, k-NN forgetting and natural-domain calibration, target-domain
# calibration, task performance. And the pre-trained backbones' k-NN, the forgetting baseline.

MEASURE_OUTPUTS = ("cka", "knn", "calibration", "reliability", "classification")


rule measure:
    input:
        trajectory=f"{RUN_DIR}/trajectory.h5",
        reference=lambda wc: pretrained_features(wc.backbone, wc.dataset),
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
    # The k-NN of 150,000 images against 50,000 is the largest part: ~3 GB at n = 10,000 (benchmarks/README.md).
    resources:
        mem_mb=32000,
    params:
        ks=sorted({config["knn"]["k"], *config["knn"]["ks"]}),
        temperature=config["knn"]["temperature"],
        n_bins=config["calibration"]["n_bins"],
        measures=config["similarity"]["measures"],
        mutual_k=config["similarity"]["mutual_knn_k"],
        mutual_clip=config["similarity"]["mutual_knn_clip"],
        rbf_bandwidth=config["similarity"]["rbf_bandwidth"],
        pool="{pool}",
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
    resources:
        mem_mb=32000,
    params:
        pool="{pool}",
        ks=sorted({config["knn"]["k"], *config["knn"]["ks"]}),
        temperature=config["knn"]["temperature"],
        n_bins=config["calibration"]["n_bins"],
    script:
        "../workflow/scripts/knn.py"
