"""The trade-off table, its verdicts and the early prediction of forgetting, on hand-made runs."""

import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import LeaveOneOut, cross_val_predict

from repdrift.analysis.tradeoff import (
    _loo_ols,
    candidates,
    early_prediction,
    paired_verdicts,
    pareto,
    run_values,
    tradeoff_table,
    verdict_lines,
)

KEYS = dict(dataset="isic", backbone="vit", pool="cls")


def study(methods: dict[str, tuple[float, float]], seeds=(0, 1, 2), spread=0.001):
    """runs.parquet rows: per method (score, similarity), the same over seeds but for a spread; the debiased CKA
    0.05 below the biased one."""
    rows = []
    for method, (score, similarity) in methods.items():
        for seed in seeds:
            run = f"isic/vit/{method}-cls/seed{seed}"
            keys = dict(KEYS, run=run, method=method, seed=seed)
            jitter = spread * (seed - 1) * (1 if method == "full" else -1)
            rows += [
                dict(keys, metric="score", layer=None, value=score + jitter),
                dict(keys, metric="cka", layer=5, value=similarity + jitter),
                dict(keys, metric="cka_debiased", layer=5, value=similarity + jitter - 0.05),
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


def verdict_rows(methods, **kwargs):
    runs, pretrained = study(methods, **kwargs)
    values = run_values(runs, pretrained, "cka", 5, 20)
    return {row["method"]: row for row in paired_verdicts(values, "wiseft0.5", 0.95).iter_rows(named=True)}


def test_paired_differences_and_their_intervals():
    methods = {"full": (0.80, 0.5), "rift": (0.795, 0.7), "l2sp": (0.70, 0.9)}
    rows = verdict_rows(methods, seeds=range(5), spread=0.0005)
    rift = rows["rift"]
    # Per seed: score -0.5 - 0.1 (s - 1) points, similarity (0.7 - 0.0005 (s - 1)) / (0.5 + 0.0005 (s - 1)).
    diffs = np.array([-0.5 - 0.1 * (s - 1) for s in range(5)])
    mean, half = diffs.mean(), 2.7764451 * diffs.std(ddof=1) / np.sqrt(5)  # t(0.975, 4)
    assert (rift["score_diff"], rift["score_lo"], rift["score_hi"]) == pytest.approx((mean, mean - half, mean + half))
    ratios = np.log([(0.7 - 0.0005 * (s - 1)) / (0.5 + 0.0005 * (s - 1)) for s in range(5)])
    assert rift["gain_pct"] == pytest.approx(100 * (np.exp(ratios.mean()) - 1))
    debiased = np.log([(0.65 - 0.0005 * (s - 1)) / (0.45 + 0.0005 * (s - 1)) for s in range(5)])
    assert rift["gain_other_pct"] == pytest.approx(100 * (np.exp(debiased.mean()) - 1))
    assert rift["estimator"] == "cka" and rift["seeds"] == 5 and rift["unpaired_seeds"] == ""
    assert rift["gain_ceiling_pct"] == pytest.approx(100 * (1 / 0.5005 - 1))  # Full's mean CKA 0.5005
    assert (rift["within"], rift["reaches"], rift["verdict"]) == ("agrees", "agrees", "agrees")
    assert rows["l2sp"]["within"] == "disagrees" and rows["l2sp"]["verdict"] == "disagrees"  # 10 points lost
    assert rift["cell_verdict"] == "agrees"  # one candidate is enough


@pytest.mark.parametrize(
    "rift, within, reaches",
    [
        ((0.795, 0.7), "agrees", "agrees"),
        ((0.785, 0.7), "disagrees", "agrees"),  # 1.5 points lost, the interval below -1
        ((0.79, 0.7), "inconclusive", "agrees"),  # 1 point lost: the interval spans -1
        ((0.795, 0.6), "agrees", "disagrees"),  # +20 %, the interval below +30 %
        ((0.795, 0.65), "agrees", "inconclusive"),  # +30 %: the interval spans it
    ],
)
def test_a_verdict_flips_when_the_paired_interval_crosses_the_bound(rift, within, reaches):
    row = verdict_rows({"full": (0.80, 0.5), "rift": rift}, seeds=range(4), spread=0.0005)["rift"]
    assert (row["within"], row["reaches"]) == (within, reaches)
    expected = "disagrees" if "disagrees" in (within, reaches) else "agrees" if within == reaches else "inconclusive"
    assert row["verdict"] == row["cell_verdict"] == expected


def test_a_missing_seed_drops_its_pair_and_is_named():
    runs, pretrained = study({"full": (0.80, 0.5), "rift": (0.795, 0.7)}, seeds=range(4))
    runs = runs.filter(pl.col("run") != "isic/vit/rift-cls/seed2")  # failed
    judged = paired_verdicts(run_values(runs, pretrained, "cka", 5, 20), "wiseft0.5", 0.95)
    (row,) = judged.iter_rows(named=True)
    assert row["seeds"] == 3 and row["unpaired_seeds"] == "2"
    assert "seed 2 unpaired" in verdict_lines(judged)[0]


def test_a_cell_agrees_only_when_a_candidate_agrees_at_the_bonferroni_level():
    # Four candidates: each judged at 95 %, the cell at 1 - 0.05 / 4. A candidate whose score interval clears -1
    # point at 95 % but not at 98.75 % agrees alone, and leaves the cell inconclusive.
    methods = {
        "full": (0.80, 0.5),
        "rift": (0.7935, 0.7),
        "l2sp": (0.70, 0.9),
        "lpft": (0.70, 0.9),
        "feature_cka": (0.7, 0.9),
    }
    rows = verdict_rows(methods, seeds=range(4), spread=0.0005)
    rift = rows["rift"]
    assert rift["cell_confidence"] == pytest.approx(1 - 0.05 / 4)
    assert rift["verdict"] == "agrees" and rift["verdict_for_cell"] == "inconclusive"
    assert rift["cell_verdict"] == "inconclusive"


def test_a_gain_out_of_reach_is_said():
    rows = verdict_rows({"full": (0.80, 0.85), "rift": (0.80, 0.95)})
    assert rows["rift"]["gain_ceiling_pct"] == pytest.approx(100 * (1 / 0.85 - 1))
    runs, pretrained = study({"full": (0.80, 0.85), "rift": (0.80, 0.95)})
    judged = paired_verdicts(run_values(runs, pretrained, "cka", 5, 20), "wiseft0.5", 0.95)
    assert "out of reach" in verdict_lines(judged)[0]


def test_candidates_are_named_in_advance():
    methods = ["full", "linear", "scratch", "l2sp", "lpft", "rift", "wiseft0.25", "wiseft0.5", "wiseft1"]
    assert candidates(methods, "wiseft0.5") == ["l2sp", "lpft", "rift", "wiseft0.5"]
    assert candidates(methods, "wiseft1") == ["l2sp", "lpft", "rift", "wiseft1"]
    rows = verdict_rows({"full": (0.8, 0.5), "linear": (0.7, 1.0), "wiseft0.25": (0.8, 0.9), "wiseft0.5": (0.7, 0.6)})
    assert set(rows) == {"wiseft0.5"}  # a = 0.25 would have won on the test set: it is no candidate
    assert rows["wiseft0.5"]["candidates"] == "wiseft0.5"


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
