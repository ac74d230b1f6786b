"""The trade-off table, its verdicts and the early prediction of forgetting, on hand-made runs."""

import math

import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import LeaveOneOut, cross_val_predict

from repdrift.tradeoff import _loo_ols, early_prediction, pareto, run_values, tradeoff_table, verdicts

KEYS = dict(dataset="isic", backbone="vit", pool="cls")


def study(methods: dict[str, tuple[float, float]], seeds=(0, 1, 2)):
    """runs.parquet rows: per method (score, similarity), the same over seeds but for a small spread."""
    rows = []
    for method, (score, similarity) in methods.items():
        for seed in seeds:
            run = f"isic/vit/{method}-cls/seed{seed}"
            keys = dict(KEYS, run=run, method=method, seed=seed)
            jitter = 0.001 * (seed - 1)
            rows += [
                dict(keys, metric="score", layer=None, value=score + jitter),
                dict(keys, metric="cka", layer=5, value=similarity + jitter),
                dict(keys, metric="knn@20", layer=None, value=0.6 + similarity / 4),
                dict(keys, metric="knn_ece@20", layer=None, value=0.1),
            ]
    runs = pl.DataFrame(rows, schema_overrides={"layer": pl.Int64, "seed": pl.Int64})
    pretrained = pl.DataFrame([dict(backbone="vit", pool="cls", metric="knn@20", value=0.85)])
    return runs, pretrained


def test_pareto_by_hand():
    score = np.array([0.8, 0.79, 0.7, 0.78])
    similarity = np.array([0.5, 0.7, 0.9, 0.6])
    assert pareto(score, similarity).tolist() == [True, True, True, False]  # (0.78, 0.6) is below (0.79, 0.7)


def test_table_changes_and_verdict():
    runs, pretrained = study({"full": (0.80, 0.5), "rift": (0.795, 0.7), "l2sp": (0.70, 0.9), "lpft": (0.80, 0.55)})
    values = run_values(runs, pretrained, "cka", 5, 20)
    assert values.height == 12
    space = values.select("run", "similarity", divergence=pl.lit(0.1))
    table = tradeoff_table(values, space, eta=0.4, eps=0.2, confidence=0.95)
    rift = table.filter(pl.col("method") == "rift").row(0, named=True)
    assert rift["runs"] == 3
    assert rift["score_change_points"] == pytest.approx(-0.5)
    assert rift["similarity_change_pct"] == pytest.approx(40.0)
    assert rift["forgetting"] == pytest.approx(0.6 + 0.7 / 4 - 0.85)
    assert rift["in_tx"] == 1.0  # similarity 0.7 >= 1 - 0.4 and divergence 0.1 <= 0.2
    assert table.filter(pl.col("method") == "full")["in_tx"][0] == 0.0
    assert set(table.filter(pl.col("pareto"))["method"]) == {"rift", "l2sp", "lpft"}
    (verdict,) = verdicts(table).iter_rows(named=True)
    assert verdict["method"] == "rift" and verdict["gain_pct"] == pytest.approx(40.0)  # l2sp loses 10 points
    assert "reaches" in verdict["verdict"]


def test_no_method_within_a_point_is_said():
    runs, pretrained = study({"full": (0.80, 0.5), "l2sp": (0.70, 0.9)})
    values = run_values(runs, pretrained, "cka", 5, 20)
    table = tradeoff_table(values, values.select("run", "similarity", divergence=pl.lit(0.5)), 0.4, 0.2, 0.95)
    (verdict,) = verdicts(table).iter_rows(named=True)
    assert verdict["method"] is None and "no method stays within 1 point" in verdict["verdict"]
    assert math.isnan(verdict["gain_pct"])


def test_leave_one_out_ols_is_sklearns():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.2, 0.9, 12)
    y = 0.3 * x + rng.normal(0, 0.02, 12)
    fit, mean = _loo_ols(x, y)
    reference = cross_val_predict(LinearRegression(), x[:, None], y, cv=LeaveOneOut())
    np.testing.assert_allclose(fit, reference, rtol=1e-10)
    np.testing.assert_allclose(mean, [(y.sum() - v) / 11 for v in y])


def test_early_prediction_beats_the_mean_when_similarity_tells():
    rng = np.random.default_rng(1)
    traj, values = [], []
    for seed in range(10):
        final = rng.uniform(0.3, 0.9)
        run = f"isic/vit/full-cls/seed{seed}"
        keys = dict(KEYS, run=run, method="full", seed=seed)
        for epoch in range(4):
            # Epoch 0 is the pre-trained model (1 for every run); later epochs approach the final similarity.
            value = 1.0 if epoch == 0 else final + (1 - final) * 0.5**epoch + rng.normal(0, 0.005)
            traj.append(dict(keys, epoch=epoch, metric="cka", layer=5, value=value))
        values.append(dict(run=run, forgetting=-0.5 * (1 - final), knn_ece=0.1 + rng.normal(0, 0.01)))
    errors = early_prediction(pl.DataFrame(traj), pl.DataFrame(values), "cka", 5)
    forgetting = errors.filter(pl.col("target") == "forgetting").sort("epoch")
    assert forgetting["runs"].to_list() == [10] * 4
    assert forgetting["ratio"][0] == pytest.approx(1.0, abs=0.2)  # epoch 0 tells nothing
    assert forgetting["ratio"][3] < 0.2  # epoch 3 nearly the final similarity
