"""Per-run measurements, each a small long-format table: CKA, k-NN forgetting, calibration, task performance.

Torch-free: these run in the CPU rules, reading feature and prediction files.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from repdrift.errors import DataError
from repdrift.features import FeatureSet, read_features, read_trajectory
from repdrift.metrics import (
    center_layers,
    expected_calibration_error,
    knn_accuracy,
    layerwise_cka,
    mean_average_precision,
    reliability_diagram,
    roc_auc,
)
from repdrift.predictions import read_predictions


def _align(reference: FeatureSet, ids: np.ndarray, path: str) -> np.ndarray:
    """Indices of `ids` in the reference file, so CKA compares the same images."""
    position = {sid: i for i, sid in enumerate(reference.sample_id)}
    missing = [sid for sid in ids if sid not in position]
    if missing:
        raise DataError(f"{path}: {len(missing)} samples (e.g. {missing[0]}) are not in the pre-trained features")
    return np.array([position[sid] for sid in ids])


def _cka_rows(reference: np.ndarray, other: np.ndarray, debiased: bool, epoch: int | None) -> list[dict]:
    values = layerwise_cka(reference, other, pairwise=False, debiased=debiased)
    return [dict(epoch=epoch, layer=layer + 1, cka=float(v)) for layer, v in enumerate(values)]


def cka_table(pretrained_path: str, finetuned_path: str, trajectory_path: str, debiased: bool) -> pl.DataFrame:
    """Layer-wise linear CKA to the pre-trained model: of the final model on the test split (`epoch` null) and
    of every epoch's probe features (`epoch` 0 = before fine-tuning)."""
    trajectory, probe_ids, attrs = read_trajectory(trajectory_path)
    pool = str(attrs["pool"])
    reference = read_features(pretrained_path, pool).select("test")
    final = read_features(finetuned_path, pool).select("test")
    rows = _cka_rows(reference.layers, final.layers[:, _align(final, reference.sample_id, finetuned_path)], debiased, None)
    # The probe's pre-trained features are centred once and reused for every epoch.
    probe_reference = center_layers(reference.layers[:, _align(reference, probe_ids, pretrained_path)])
    for epoch in range(trajectory.shape[0]):
        rows += _cka_rows(probe_reference, trajectory[epoch], debiased, epoch)
    return pl.DataFrame(rows, schema={"epoch": pl.Int64, "layer": pl.Int64, "cka": pl.Float64}).with_columns(
        pool=pl.lit(pool)
    )


def knn_table(features_path: str, pool: str, ks: list[int], temperature: float) -> pl.DataFrame:
    """Weighted k-NN accuracy (DINO protocol) on the natural domain: bank = train split, queries = test split."""
    features = read_features(features_path, pool)
    bank, queries = features.select("train"), features.select("test")
    accuracy = knn_accuracy(
        bank.final, bank.targets, queries.final, queries.targets, ks=tuple(sorted(set(ks))), temperature=temperature
    )
    return pl.DataFrame({"k": list(accuracy), "accuracy": [float(v) for v in accuracy.values()]}).with_columns(
        pool=pl.lit(pool)
    )


def calibration_tables(predictions_path: str, n_bins: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """ECE (top-label; per (sample, class) pair for multi-label) and the reliability diagram's bins."""
    predictions = read_predictions(predictions_path)
    targets = predictions.targets
    ece = expected_calibration_error(predictions.probs, targets, n_bins=n_bins)
    bins = pl.DataFrame({k: np.asarray(v) for k, v in reliability_diagram(predictions.probs, targets, n_bins).items()})
    return pl.DataFrame({"metric": ["ece"], "value": [float(ece)]}), bins


def classification_table(predictions_path: str) -> pl.DataFrame:
    """Accuracy and balanced accuracy (multiclass, binary), mAP and macro AUC (every task)."""
    p = read_predictions(predictions_path)
    values = {}
    if p.task == "multilabel":
        one_hot = p.targets
    else:
        predicted = p.probs.argmax(1)
        values["accuracy"] = float((predicted == p.targets).mean())
        recalls = [(predicted[p.targets == c] == c).mean() for c in np.unique(p.targets)]
        values["balanced_accuracy"] = float(np.mean(recalls))
        one_hot = np.eye(p.probs.shape[1], dtype=np.int8)[p.targets]
    values["map"] = float(mean_average_precision(p.probs, one_hot))
    values["auc"] = float(roc_auc(p.probs, one_hot))
    return pl.DataFrame({"metric": list(values), "value": list(values.values())})
