# Layer-wise features (HDF5) of the pre-trained backbones on every dataset (the CKA reference, the k-NN bank and
# queries), and the fine-tuned models' features on the natural domain (k-NN). A fine-tuned model's features on its
# target dataset are its trajectory's last epoch (rule finetune), so they are not extracted again.


rule pretrained_features:
    input:
        weights=lambda wc: weights_file(wc.backbone),
        manifest=manifest("{dataset}"),
    output:
        features="results/pretrained/{backbone}/features/{dataset}.h5",
    log:
        "results/logs/pretrained_features/{backbone}/{dataset}.log",
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        gpu=1,
    params:
        backbone=lambda wc: backbone_cfg(wc.backbone),
        splits=lambda wc: feature_splits(wc.dataset),
        batch_size=config["features"]["batch_size"],
    script:
        "../workflow/scripts/pretrained_features.py"


rule extract_features:
    input:
        model=f"{RUN_DIR}/model.safetensors",
        natural=manifest(KNN_DATASET),
    output:
        natural=f"{RUN_DIR}/features/{KNN_DATASET}.h5",
    log:
        f"results/logs/extract_features/{RUN}.log",
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        gpu=1,
    params:
        backbone=lambda wc: backbone_cfg(wc.backbone),
        natural_splits=feature_splits(KNN_DATASET),
        batch_size=config["features"]["batch_size"],
    script:
        "../workflow/scripts/extract_features.py"
