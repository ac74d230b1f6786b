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
    peft_lines,
    peft_verdicts,
    run_values,
    tradeoff_table,
    verdict_lines,
)

KEYS = dict(dataset="isic", backbone="vit", pool="cls")


def study(methods: dict[str, tuple[float, float]], seeds=(0, 1, 2), spread=0.001):
    """runs.parquet rows: per method (score, similarity), the same over seeds but for a spread (k-NN accuracy too: a
    difference that does not vary over seeds has no interval); the debiased CKA 0.05 below the biased one."""
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
                dict(keys, metric="knn@20", layer=None, value=0.6 + similarity / 4 + jitter),
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
    assert candidates([*methods, "lora4", "bitfit", "partial"], "wiseft0.5") == ["l2sp", "lpft", "rift", "wiseft0.5"]
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


def peft_rows(methods, **kwargs):
    runs, pretrained = study(methods, **kwargs)
    values = run_values(runs, pretrained, "cka", 5, 20)
    verdicts = peft_verdicts(values, 0.95)
    return verdicts, {row["method"]: row for row in verdicts.iter_rows(named=True)}


def test_peft_paired_differences_by_hand_and_the_three_parts():
    # study(): k-NN accuracy 0.6 + similarity / 4, so forgetting moves with similarity; per-seed jitter opposite.
    verdicts, rows = peft_rows({"full": (0.80, 0.5), "lora2": (0.78, 0.7), "lora8": (0.79, 0.6)}, seeds=range(4))
    lora = rows["lora2"]
    score = np.array([100 * (0.78 - 0.80 - 0.002 * (s - 1)) for s in range(4)])  # jitter: -0.001 (s-1) twice
    half = 3.1824463 * score.std(ddof=1) / 2  # t(0.975, 3), sqrt(4)
    assert (lora["score_diff"], lora["score_lo"], lora["score_hi"]) == pytest.approx(
        (score.mean(), score.mean() - half, score.mean() + half)
    )
    similarity = np.array([0.2 - 0.002 * (s - 1) for s in range(4)])
    assert lora["similarity_diff"] == pytest.approx(similarity.mean())
    # k-NN accuracy (0.6 + similarity / 4 + jitter) in points: 0.2 / 4 and the jitter's -0.002 (s - 1), 0.5 on average
    assert lora["forgetting_diff"] == pytest.approx(100 * (0.2 / 4 - 0.002 * 0.5))
    assert (lora["learns_less"], lora["forgets_less"], lora["keeps_more"], lora["verdict"]) == (
        "agrees",
        "agrees",
        "agrees",
        "agrees",
    )
    assert set(verdicts["claim_verdict"]) == {"agrees"} and lora["seeds"] == 4


@pytest.mark.parametrize(
    "lora, parts, claim",
    [
        ((0.82, 0.7), ("disagrees", "agrees", "agrees"), "disagrees"),  # learns more than Full
        ((0.78, 0.3), ("agrees", "disagrees", "disagrees"), "disagrees"),  # forgets more, keeps less
        ((0.80, 0.7), ("inconclusive", "agrees", "agrees"), "inconclusive"),  # the score interval spans 0
    ],
)
def test_peft_verdict_flips_with_each_part(lora, parts, claim):
    verdicts, rows = peft_rows({"full": (0.80, 0.5), "lora4": lora, "bitfit": (0.5, 0.1)})
    assert (rows["lora4"]["learns_less"], rows["lora4"]["forgets_less"], rows["lora4"]["keeps_more"]) == parts
    assert set(verdicts["claim_verdict"]) == {claim}  # judged on LoRA only: BitFit's numbers are beside it
    assert rows["bitfit"]["verdict"] == "disagrees"  # it forgets more and keeps less, but is no part of the claim


def test_peft_claim_needs_every_rank_and_lists_every_method():
    verdicts, rows = peft_rows({"full": (0.80, 0.5), "lora2": (0.78, 0.7), "lora8": (0.80, 0.7), "rift": (0.8, 0.9)})
    assert set(rows) == {"lora2", "lora8"}  # RIFT is a preserving method: the trade-off verdicts judge it
    assert rows["lora2"]["verdict"] == "agrees" and rows["lora8"]["verdict"] == "inconclusive"
    assert set(verdicts["claim_verdict"]) == {"inconclusive"}
    (line,) = peft_lines(verdicts)
    assert line.startswith(
        "isic, vit (cls) against Full of the same seeds. LoRA learns less and forgets less (every "
        "rank; a rank disagrees at 97.5%): inconclusive. lora2: score -2.0 points"
    )


def test_peft_with_one_seed_has_no_interval_and_no_verdict():
    _, rows = peft_rows({"full": (0.80, 0.5), "lora2": (0.70, 0.9)}, seeds=[0])
    assert rows["lora2"]["verdict"] == "inconclusive" and np.isnan(rows["lora2"]["score_lo"])


@pytest.mark.parametrize("seeds, width", [(range(2), "12.7 standard errors"), (range(5), "2.8 standard errors")])
def test_the_findings_page_says_what_the_paired_seeds_can_conclude(tmp_path, seeds, width):
    from repdrift.analysis.findings import Claim, write_findings_page

    verdicts, _ = peft_rows({"full": (0.80, 0.5), "lora2": (0.78, 0.7)}, seeds=seeds)
    facts = dict(runs_per_backbone={}, study_runs=0, estimator="biased", layer="final", samples="n", grid="g", k=20)
    facts |= dict(confidence=0.95, missing={})
    page = tmp_path / "findings.html"
    beyond = ["isic, vit (cls): candidates rift against Full ..."]
    write_findings_page([Claim("a", "t", "p", "r")], facts, page, beyond, peft=verdicts, beyond_seeds=len(seeds))
    text = page.read_text()
    assert "<h3>Beyond the paper: parameter-efficient fine-tuning</h3>" in text
    # once for the preserving section, once for the PEFT one, each with the t quantile of its seeds
    assert text.count(f"With {len(seeds)} paired seeds, a t interval is {width} wide on each side (95%)") == 2
    assert "lora2: score" in text


def paired(diffs: dict[str, dict[str, list[float]]], seeds=(0, 1, 2)) -> pl.DataFrame:
    """run_values rows: Full at 0 everywhere, each method at its per-seed differences (score and forgetting as
    fractions, so that the verdicts' points are 100 x these)."""
    rows = [dict(KEYS, method="full", seed=s, score=0.0, forgetting=0.0, similarity=0.0) for s in seeds]
    for method, columns in diffs.items():
        rows += [
            dict(KEYS, method=method, seed=s, **{c: v[i] for c, v in columns.items()}) for i, s in enumerate(seeds)
        ]
    return pl.DataFrame(rows)


def test_keeping_similarity_is_shown_but_no_part_of_biderman_et_al():
    # Learns less and forgets less, keeps less of the pre-trained representation: agrees with the claim.
    lora = dict(score=[-0.02, -0.03, -0.025], forgetting=[0.01, 0.012, 0.011], similarity=[-0.1, -0.12, -0.11])
    verdicts = peft_verdicts(paired({"lora4": lora}), 0.95)
    row = verdicts.row(0, named=True)
    assert (row["learns_less"], row["forgets_less"], row["keeps_more"]) == ("agrees", "agrees", "disagrees")
    assert row["verdict"] == row["claim_verdict"] == "agrees"


def test_a_rank_disagrees_only_with_intervals_widened_for_the_number_of_ranks():
    # lora8 learns more: +1.5 points [+0.26, +2.74] at 95 % (3 seeds: t 4.30), [-0.29, +3.29] at 97.5 % (t 6.21).
    more = dict(score=[0.010, 0.015, 0.020], forgetting=[0.01, 0.011, 0.012], similarity=[0.1, 0.1, 0.1])
    unsure = dict(score=[-0.02, 0.01, -0.03], forgetting=[0.01, -0.011, 0.012], similarity=[0.1, 0.1, 0.1])
    alone = peft_verdicts(paired({"lora8": more}), 0.95).row(0, named=True)
    half = 4.302653 * 0.5 / 3**0.5  # t(0.975, 2) x sd / sqrt(3)
    assert (alone["score_lo"], alone["score_hi"]) == pytest.approx((1.5 - half, 1.5 + half))
    assert alone["verdict"] == alone["claim_verdict"] == "disagrees" and alone["claim_confidence"] == 0.95
    both = {r["method"]: r for r in peft_verdicts(paired({"lora8": more, "lora2": unsure}), 0.95).iter_rows(named=True)}
    assert both["lora8"]["verdict"] == "disagrees" and both["lora8"]["verdict_widened"] == "inconclusive"
    assert both["lora8"]["claim_confidence"] == pytest.approx(0.975)
    assert both["lora8"]["claim_verdict"] == "inconclusive"


def test_tied_differences_give_no_interval_and_no_verdict():
    # Both seeds' k-NN forgetting 3 points smaller than Full's (accuracy moves in steps of one image): a zero-width
    # t interval would agree by coincidence.
    lora = dict(score=[-0.05, -0.02], forgetting=[0.03, 0.03], similarity=[0.1, 0.2])
    verdicts = peft_verdicts(paired({"lora4": lora}, seeds=(0, 1)), 0.95)
    row = verdicts.row(0, named=True)
    assert row["forgetting_diff"] == pytest.approx(3.0) and np.isnan(row["forgetting_lo"])
    assert row["forgets_less"] == "inconclusive" and row["claim_verdict"] == "inconclusive"
    (line,) = peft_lines(verdicts)
    assert "natural-domain k-NN accuracy +3.0 points (no interval)" in line


def test_one_missing_seed_is_named_and_one_extreme_seed_cannot_carry_the_verdict():
    lora = dict(score=[-0.03, -0.02, -0.025], forgetting=[0.01, 0.012, 0.011], similarity=[0.1, 0.1, 0.1])
    values = paired({"lora4": lora})
    assert peft_verdicts(values, 0.95).row(0, named=True)["verdict"] == "agrees"
    # LoRA's seed 2 lost: judged on the two seeds both have, the lost one named.
    lost = peft_verdicts(values.filter(~((pl.col("method") == "lora4") & (pl.col("seed") == 2))), 0.95).row(
        0, named=True
    )
    assert lost["seeds"] == 2 and lost["unpaired_seeds"] == "2"
    # One extreme seed (a score 30 points above Full's) widens the interval: no verdict rests on the other two.
    extreme = dict(lora, score=[-0.03, -0.02, 0.30])
    row = peft_verdicts(paired({"lora4": extreme}), 0.95).row(0, named=True)
    assert row["learns_less"] == "inconclusive" and row["claim_verdict"] == "inconclusive"
