"""WiSE-FT (Wortsman et al. 2022, "Robust fine-tuning of zero-shot models"): weight-space ensembles
theta(a) = (1 - a) theta0 + a theta1 of two whole models, head included, that exist at both ends, as their code
interpolates every tensor. The paper's theta0 is a zero-shot model and theta1 is fine-tuned from its head; without
a zero-shot head, by analogy, theta0 is the pre-trained backbone with a linear-probe head (the study's Linear run of
the seed) and theta1 the model fine-tuned from that head (the LP-FT run of the seed, whose probe is that very Linear
run: tests/test_training.py). At a = 0 the ensemble is the probe model, at a = 1 the LP-FT model.

No training: each a of `preserving.wiseft.alphas` is a run of its own (method `wiseft<a>`, e.g. `wiseft0.5`) derived
from the Linear and LP-FT runs of the same dataset, backbone, pool and seed, which are not retrained. One job per
seed writes every a's outputs, the same files a fine-tune writes (training.write_run), so every measurement reads
them unchanged: the model, a one-row history (the last epoch, test loss and score), test predictions, a trajectory
holding the CKA sample's features before fine-tuning (epoch 0: the pre-trained backbone, theta0's) and of the
ensemble (the last epoch), and the k-NN features.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from repdrift.data import read_dataset
from repdrift.data.loader import ManifestImages, loader_workers
from repdrift.errors import DataError
from repdrift.formats.features import cka_sample
from repdrift.formats.predictions import Predictions
from repdrift.measurement.extract import feature_source
from repdrift.training.finetune import (
    RunOutputs,
    _Loop,
    evaluate,
    load_classifier,
    sample_features,
    task_metric,
    write_run,
)


def interpolate(start: dict[str, torch.Tensor], end: dict[str, torch.Tensor], alpha: float) -> dict:
    """(1 - alpha) start + alpha end for every floating-point tensor; the others (integer buffers) from `end`."""
    if start.keys() != end.keys():
        raise ValueError(f"the two models differ in their tensors: {sorted(start.keys() ^ end.keys())[:5]}")
    return {
        key: torch.lerp(start[key], value, alpha) if value.is_floating_point() else value for key, value in end.items()
    }


def wise_ft(
    backbone_cfg: dict,
    probe_model: str | Path,
    lpft_model: str | Path,
    dataset_dir: str | Path,
    alphas: list[float],
    methods: list[str],
    outputs: list[dict],
    epochs: int,
    seed: int,
    batch_size: int,
    cka_samples: int,
    feature_dtype: str,
    knn: dict,
) -> None:
    """Write each alpha's run; `outputs[i]` = dict(model, history, predictions, trajectory, natural), the fields
    of training.RunOutputs, for alphas[i], whose method (run id) is methods[i] (rules/common.smk WISEFT_METHODS).
    `probe_model` is theta0 (a Linear run's model.safetensors), `lpft_model` theta1. `knn` = dict(dataset_dir,
    splits, batch_size)."""
    torch.manual_seed(seed)
    loop = _Loop(batch_size, torch.Generator().manual_seed(seed))
    start = load_classifier(backbone_cfg, probe_model)
    model = load_classifier(backbone_cfg, lpft_model).to(loop.device)
    if start.pool != model.pool:
        raise DataError(f"{probe_model} reads the {start.pool} pool, {lpft_model} the {model.pool} pool")
    finetuned = {k: v.detach().clone() for k, v in model.state_dict().items()}
    pretrained = {k: v.to(loop.device) for k, v in start.state_dict().items()}
    dataset = read_dataset(dataset_dir)
    test = dataset.manifest.sort("sample_id").filter(pl.col("split") == "test")
    keep = "transformed" if loader_workers() == 0 else None
    test_set = ManifestImages(test, model.backbone.transform(False), dataset.task, len(dataset.classes), keep=keep)
    loader = loop.loader(test_set, shuffle=False)
    probe = cka_sample(len(test_set), cka_samples)
    model.load_state_dict(interpolate(pretrained, finetuned, 0.0))
    before = sample_features(model, torch.stack([test_set[int(i)][0] for i in probe]), loop).astype(feature_dtype)
    natural = feature_source(model.backbone, knn["dataset_dir"], list(knn["splits"]), 0, keep=True)
    for alpha, method, out in zip(alphas, methods, outputs, strict=True):
        started = time.perf_counter()
        model.load_state_dict(interpolate(pretrained, finetuned, alpha))
        test_loss, probs, targets, features = evaluate(model, loader, loop, dataset.task, probe)
        metric, value = task_metric(probs, targets, dataset.task)
        seconds = time.perf_counter() - started
        print(f"a = {alpha:g}: test loss {test_loss:.4f}, test {metric} {value:.4f}", flush=True)
        history = dict(
            epoch=epochs,
            train_loss=float("nan"),
            test_loss=test_loss,
            metric=metric,
            test_value=value,
            lr=0.0,
            seconds=seconds,
            images_per_s=len(test_set) / seconds,
        )
        write_run(
            RunOutputs(**out),
            model,
            dict(format="pt", method=method, pool=model.pool, seed=str(seed), alpha=f"{alpha:g}"),
            pl.DataFrame([history]),
            Predictions(probs, targets, test["sample_id"].to_numpy(), dataset.task, dataset.classes),
            np.stack([before, features.astype(feature_dtype)]),
            test["sample_id"].to_numpy()[probe],
            dict(
                pool=model.pool,
                method=method,
                seed=seed,
                model=backbone_cfg.get("arch", ""),
                epochs=[0, epochs],
                alpha=alpha,
            ),
            feature_dtype,
            knn,
            natural,
        )
