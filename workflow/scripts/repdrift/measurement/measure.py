"""Per-run measurements, each a small long-format table: CKA, k-NN forgetting and natural-domain calibration,
target-domain calibration, task performance.

Torch-free: these run in the CPU rules, reading feature and prediction files.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from repdrift.errors import DataError
from repdrift.formats.features import Trajectory, read_features, read_layers
from repdrift.formats.predictions import read_predictions
from repdrift.metrics import (
    binned_ece,
    center_layers,
    clip_outliers,
    expected_calibration_error,
    knn_top_label,
    layerwise_cka,
    mean_average_precision,
    mutual_knn,
    procrustes,
    pwcca,
    rbf_cka,
    reliability_diagram,
    roc_auc,
    rsa,
)
from repdrift.study import mutual_knn_metric


def _align(reference_ids: np.ndarray, ids: np.ndarray, path: str) -> np.ndarray:
    """Indices of `ids` in the reference file's CKA sample, so CKA compares the same images."""
    position = {sid: i for i, sid in enumerate(reference_ids)}
    missing = [sid for sid in ids if sid not in position]
    if missing:
        raise DataError(
            f"{path}: {len(missing)} samples (e.g. {missing[0]}) are not in the pre-trained features' "
            "CKA sample (were they extracted with another cka.samples or cka.dataset_samples?)"
        )
    return np.array([position[sid] for sid in ids])


# The measures beside CKA (config `similarity.measures`), each computed on the same features as CKA.
MEASURES = ("procrustes", "pwcca", "rsa", "mutual_knn", "rbf_cka")


def measure_column(name: str, k: int) -> str:
    """The column (and runs.parquet metric) of a measure: mutual_knn carries its k."""
    return mutual_knn_metric(k) if name == "mutual_knn" else name


def _other_measures(
    reference: np.ndarray, other: np.ndarray, measures: list[str], k: int, clip: float, bandwidth: float
) -> list[dict]:
    """Per layer, every configured measure of the layer's features against the pre-trained ones. Mutual k-NN reads
    each model's features clipped once over all its layers, as Huh et al.'s code clips a model's (n, layers, d)
    features (one threshold per model, platonic-rep `prepare_features`), not layer by layer."""
    clipped = [_clipped_model(a, clip) for a in (reference, other)] if "mutual_knn" in measures else None
    functions = {
        "procrustes": lambda x, y, layer: procrustes(x, y),
        "pwcca": lambda x, y, layer: pwcca(x, y),
        "rsa": lambda x, y, layer: rsa(x, y),
        "mutual_knn": lambda x, y, layer: mutual_knn(clipped[0][layer], clipped[1][layer], k=k, clip=1.0),
        "rbf_cka": lambda x, y, layer: rbf_cka(x, y, threshold=bandwidth),
    }
    return [
        {measure_column(name, k): functions[name](ref, cur, layer) for name in measures}
        for layer, (ref, cur) in enumerate(zip(reference, other, strict=True))
    ]


def _clipped_model(layers: np.ndarray, q: float) -> np.ndarray:
    """(layers, n, d) features clipped at one threshold over all layers: each sample's values across the layers
    side by side, as platonic-rep flattens its (n, layers, d) features (`clip_outliers`)."""
    n_layers, n, d = layers.shape
    side_by_side = layers.transpose(1, 0, 2).reshape(n, n_layers * d)
    return clip_outliers(side_by_side, q).reshape(n, n_layers, d).transpose(1, 0, 2)


def _cka_rows(reference, other: np.ndarray, epoch: int | None) -> list[dict]:
    biased = layerwise_cka(reference, other, pairwise=False, debiased=False)
    debiased = layerwise_cka(reference, other, pairwise=False, debiased=True)
    return [
        dict(epoch=epoch, layer=layer + 1, cka=float(b), cka_debiased=float(d))
        for layer, (b, d) in enumerate(zip(biased, debiased))
    ]


def cka_table(
    pretrained_path: str,
    trajectory_path: str,
    measures: list[str] = (),
    k: int = 10,
    clip: float = 0.95,
    bandwidth: float = 0.8,
) -> pl.DataFrame:
    """Linear CKA to the pre-trained model, both estimators (biased, as the paper's Eq. 1, and the debiased
    U-statistic), at every layer (blocks 1..L, then L + 1 = the final representation the head and the k-NN see)
    and every epoch of the trajectory (epoch 0 = before fine-tuning), all on the run's CKA sample of test images.

    The final model is the trajectory's last epoch, so its rows (`epoch` null) repeat that epoch's values: the
    final CKA and the last trajectory point are one measurement on the same images. `measures` (of MEASURES) are
    added as columns, each on the same features (repdrift.metrics.similarity; mutual k-NN with `k` neighbours
    after clipping at the `clip` quantile, RBF CKA with sigma = `bandwidth` x the median distance).
    """
    trajectory = Trajectory(trajectory_path)
    pool = str(trajectory.attrs["pool"])
    reference, reference_ids = read_layers(pretrained_path, pool)
    reference_layers = reference[:, _align(reference_ids, trajectory.sample_id, pretrained_path)]
    if reference_layers.shape[0] != trajectory.shape[1]:
        raise DataError(
            f"{trajectory_path}: {trajectory.shape[1]} layers, but the pre-trained features in "
            f"{pretrained_path} have {reference_layers.shape[0]} (blocks + final)"
        )
    # The pre-trained features are centred once and reused for every epoch.
    centred = center_layers(reference_layers)
    rows = []
    for index, epoch in enumerate(trajectory.epochs):
        features = trajectory[index]
        cka_rows = _cka_rows(centred, features, epoch)
        others = _other_measures(reference_layers, features, list(measures), k, clip, bandwidth)
        rows += [dict(row, **extra) for row, extra in zip(cka_rows, others, strict=True)]
    rows += [dict(row, epoch=None) for row in rows[-trajectory.shape[1] :]]
    schema = {"epoch": pl.Int64, "layer": pl.Int64, "cka": pl.Float64, "cka_debiased": pl.Float64}
    schema |= {measure_column(name, k): pl.Float64 for name in measures}
    return pl.DataFrame(rows, schema=schema).with_columns(pool=pl.lit(pool), samples=pl.lit(len(trajectory.sample_id)))


def knn_table(features_path: str, pool: str, ks: list[int], temperature: float, n_bins: int) -> pl.DataFrame:
    """Weighted k-NN (DINO protocol) on the natural domain, bank = train split, queries = test split: accuracy
    and the natural-domain ECE of the vote (its normalised class scores as the predicted probabilities)."""
    features = read_features(features_path, pool)
    bank, queries = features.select("train"), features.select("test")
    top = knn_top_label(bank.final, bank.targets, queries.final, ks=tuple(sorted(set(ks))), temperature=temperature)
    rows = [
        dict(
            k=k,
            accuracy=float(np.mean(pred == queries.targets)),
            ece=binned_ece(confidence, pred == queries.targets, n_bins),
        )
        for k, (pred, confidence) in top.items()
    ]
    return pl.DataFrame(rows, schema={"k": pl.Int64, "accuracy": pl.Float64, "ece": pl.Float64}).with_columns(
        pool=pl.lit(pool)
    )


# The tables of a run without predictions (an external model without a head: repdrift.training.external writes a
# predictions file with no rows): no rows, the columns of any run's.
METRIC_SCHEMA = {"metric": pl.Utf8, "value": pl.Float64}
RELIABILITY_SCHEMA = {
    "lower": pl.Float64,
    "upper": pl.Float64,
    "count": pl.Int64,
    "confidence": pl.Float64,
    "accuracy": pl.Float64,
}


def calibration_tables(predictions_path: str, n_bins: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """ECE (top-label; per (sample, class) pair for multi-label) and the reliability diagram's bins; no rows of
    either for a predictions file without rows (a model without a head)."""
    predictions = read_predictions(predictions_path)
    if len(predictions.sample_id) == 0:
        return pl.DataFrame(schema=METRIC_SCHEMA), pl.DataFrame(schema=RELIABILITY_SCHEMA)
    targets = predictions.targets
    ece = expected_calibration_error(predictions.probs, targets, n_bins=n_bins)
    bins = pl.DataFrame({k: np.asarray(v) for k, v in reliability_diagram(predictions.probs, targets, n_bins).items()})
    return pl.DataFrame({"metric": ["ece"], "value": [float(ece)]}), bins


def classification_table(predictions_path: str) -> pl.DataFrame:
    """Accuracy and balanced accuracy (multiclass, binary), mAP and macro AUC (every task); no rows for a predictions
    file without rows (a model without a head)."""
    p = read_predictions(predictions_path)
    if len(p.sample_id) == 0:
        return pl.DataFrame(schema=METRIC_SCHEMA)
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


def measure_run(
    trajectory: str,
    reference: str,
    natural: str,
    predictions: str,
    pool: str,
    ks: list[int],
    temperature: float,
    n_bins: int,
    out: dict[str, str],
    measures: list[str] = (),
    mutual_k: int = 10,
    mutual_clip: float = 0.95,
    rbf_bandwidth: float = 0.8,
) -> None:
    """Every measurement of one run, each into its own table: `out` maps cka, knn, calibration, reliability and
    classification to their paths."""
    cka_table(reference, trajectory, measures, mutual_k, mutual_clip, rbf_bandwidth).write_parquet(out["cka"])
    knn_table(natural, pool, ks, temperature, n_bins).write_parquet(out["knn"])
    ece, bins = calibration_tables(predictions, n_bins)
    ece.write_parquet(out["calibration"])
    bins.write_parquet(out["reliability"])
    classification_table(predictions).write_parquet(out["classification"])
