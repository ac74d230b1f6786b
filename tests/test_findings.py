"""The findings page on a hand-built study whose answers are known: every claim agrees, and flips when its data
flips."""

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats

from repdrift.findings import (
    AGREES,
    DISAGREES,
    INCONCLUSIVE,
    band_verdict,
    findings,
    findings_table,
    mean_ci,
    share_ci,
    trajectory_shape,
    write_findings_page,
)

PARADIGMS = {"vit": "supervised", "clip": "clip", "dino": "self_supervised"}
KEYS = {"run": pl.Utf8, "dataset": pl.Utf8, "backbone": pl.Utf8, "method": pl.Utf8, "pool": pl.Utf8, "seed": pl.Int64}
SEEDS, EPOCHS, FINAL = 10, 10, 3  # layers: blocks 1-2, 3 = the final representation


def make_study(
    full_beats_linear=True, low_similarity=True, supervised_decays=True, supervised_forgets_less=True, vit_r=0.95
):
    rng = np.random.default_rng(0)
    runs, traj, grid = [], [], []

    def run_rows(keys, **metrics):
        for metric, value in metrics.items():
            if metric.startswith("cka") and metric != "cka_samples":
                runs.extend(dict(keys, metric=metric, layer=layer, value=value) for layer in range(1, FINAL + 1))
            else:
                runs.append(dict(keys, metric=metric, layer=None, value=value))

    for backbone in PARADIGMS:
        supervised = backbone == "vit"
        for dataset in ("isic", "aptos", "colon", "chest"):  # Table 1 / Table 2 cells, seed 0
            for method in ("full", "linear") + (("scratch",) if supervised else ()):
                score = {"full": 0.8, "linear": 0.7, "scratch": 0.5}[method]
                if not full_beats_linear and method != "scratch":
                    score = 1.5 - score  # linear 0.8, full 0.7
                keep = 0.75 if supervised == supervised_forgets_less else 0.3
                keys = dict(
                    run=f"{dataset}/{backbone}/{method}-cls/seed0",
                    dataset=dataset,
                    backbone=backbone,
                    method=method,
                    pool="cls",
                    seed=0,
                )
                run_rows(keys, score=score, **{"knn@20": keep if method == "full" else 0.8})
        for seed in range(1, SEEDS):  # the similarity grid: ISIC Full, seeds 0..9 (seed 0 is the Table 1 run)
            keys = dict(
                run=f"isic/{backbone}/full-cls/seed{seed}",
                dataset="isic",
                backbone=backbone,
                method="full",
                pool="cls",
                seed=seed,
            )
            run_rows(keys, score=0.8, **{"knn@20": 0.7})
        for seed in range(SEEDS):
            run = f"isic/{backbone}/full-cls/seed{seed}"
            grid.append(run)
            level = (0.3 if low_similarity else 0.8) + rng.normal(0, 0.02)
            keys = dict(run=run, dataset="isic", backbone=backbone, method="full", pool="cls", seed=seed)
            run_rows(keys, cka=level, cka_debiased=level - 0.1, cka_samples=96)
            slope = -0.01 if supervised == supervised_decays else 0.01  # supervised decays, the others recover
            curve = [1.0, 0.5] + [0.5 + slope * (e - 1) + rng.normal(0, 0.001) for e in range(2, EPOCHS + 1)]
            for epoch, value in enumerate(curve):
                traj += [dict(keys, epoch=epoch, metric="cka", layer=layer, value=value) for layer in (1, 2, 3)]
    pretrained = pl.DataFrame([dict(backbone=b, pool="cls", metric="knn@20", value=0.8) for b in PARADIGMS])
    # Interval-fit r per backbone and metric (k-NN, ECE): ViT strong, OpenCLIP little / moderate, DINOv2 negligible;
    # bootstrap replicates spread 0.05 around them, the CI the fit row states.
    fits, boot = [], []
    for b, values in {"vit": (vit_r, vit_r), "clip": (0.2, 0.45), "dino": (0.02, -0.03)}.items():
        for m, r in zip(("knn@20", "knn_ece@20"), values):
            draws = np.clip(r + rng.normal(0, 0.05, 500), -1, 1)
            lo, hi = np.percentile(draws, [2.5, 97.5])
            fits.append(
                dict(
                    metric=m,
                    layer=FINAL,
                    backbone=b,
                    runs=SEEDS,
                    r=r,
                    r_lo=lo,
                    r_hi=hi,
                    intervals=8,
                    spearman=r,
                    note="",
                )
            )
            boot += [dict(metric=m, layer=FINAL, backbone=b, replicate=i, r=v) for i, v in enumerate(draws)]
    return (
        pl.DataFrame(runs, schema=KEYS | {"metric": pl.Utf8, "layer": pl.Int64, "value": pl.Float64}),
        pl.DataFrame(
            traj, schema=KEYS | {"epoch": pl.Int64, "metric": pl.Utf8, "layer": pl.Int64, "value": pl.Float64}
        ),
        pretrained,
        pl.DataFrame(
            {"grid": "similarity", "run": grid, "failure": None},
            schema={"grid": pl.Utf8, "run": pl.Utf8, "failure": pl.Utf8},
        ),
        pl.DataFrame(fits),
        pl.DataFrame(boot),
    )


def verdicts(**flips):
    claims, facts = findings(
        *make_study(**flips), grid="similarity", layer="final", similarity="cka", k=20, paradigms=PARADIGMS
    )
    return {c.key: c for c in claims}, facts


def test_a_study_like_the_paper_agrees_on_every_claim():
    claims, facts = verdicts()
    for claim in claims.values():
        assert claim.verdict == AGREES, [(p.label, p.measured, p.verdict) for p in claim.parts]
    assert facts["runs_per_backbone"] == {"clip": SEEDS, "dino": SEEDS, "vit": SEEDS}
    assert "12 of 12 cells" in claims["a"].parts[0].measured  # 3 backbones x 4 datasets
    assert "8 of 8 cells" in claims["a"].parts[1].measured  # Scratch vs Full and vs Linear, 4 datasets
    assert "10 seeds" in claims["a"].parts[2].measured and "n = 96" in claims["a"].parts[2].measured
    assert "seed 0" in claims["a"].parts[0].measured  # the similarity grid's extra seeds stay out of Table 1 cells
    # (d): 2 "clear" parts for ViT, then the orderings: ViT > OpenCLIP and > DINOv2 on both metrics, OpenCLIP >
    # DINOv2 on ECE (moderate > negligible) and on k-NN (little > negligible), OpenCLIP's ECE > its k-NN.
    assert len(claims["d"].parts) == 2 + 4 + 2 + 1


@pytest.mark.parametrize(
    "flip, claim",
    [
        ({"full_beats_linear": False}, "a"),
        ({"low_similarity": False}, "a"),
        ({"supervised_decays": False}, "b"),
        ({"supervised_forgets_less": False}, "c"),
        ({"vit_r": 0.05}, "d"),
    ],
)
def test_a_verdict_flips_when_the_data_flips(flip, claim):
    claims, _ = verdicts(**flip)
    assert claims[claim].verdict == DISAGREES
    assert all(c.verdict == AGREES for key, c in claims.items() if key != claim)


def test_a_line_that_could_not_be_fitted_leaves_its_comparisons_inconclusive():
    # Too few distinct similarity levels for a backbone: correlation.csv has its row without r, and no replicates.
    runs, traj, pretrained, grid, fits, boot = make_study()
    unfitted = (pl.col("backbone") == "dino") & (pl.col("metric") == "knn@20")
    fits = fits.with_columns(
        [pl.when(unfitted).then(None).otherwise(pl.col(c)).alias(c) for c in ("r", "r_lo", "r_hi")]
    ).with_columns(note=pl.when(unfitted).then(pl.lit("only 2 non-empty intervals")).otherwise(pl.col("note")))
    claims, _ = findings(
        runs, traj, pretrained, grid, fits, boot.filter(~unfitted), grid="similarity", layer="final",
        similarity="cka", k=20, paradigms=PARADIGMS,
    )  # fmt: skip
    dino_knn = [p for p in claims[3].parts if "(DINOv2) with knn@20" in p.label]
    assert len(dino_knn) == 2 and all(p.verdict == INCONCLUSIVE for p in dino_knn)
    assert all("not fitted (only 2 non-empty intervals)" in p.measured for p in dino_knn)
    assert all(p.verdict == AGREES for p in claims[3].parts if p not in dino_knn)


def test_page_has_one_row_per_claim_and_a_part_table(tmp_path):
    # ViT's |r| 0.5 is not told apart from OpenCLIP's 0.45 with ECE: inconclusive, not disagreeing.
    claims, facts = findings(
        *make_study(vit_r=0.5), grid="similarity", layer="final", similarity="cka", k=20, paradigms=PARADIGMS
    )
    assert claims[3].verdict == INCONCLUSIVE
    page = tmp_path / "findings.html"
    write_findings_page(claims, facts, page)
    text = page.read_text()
    assert text.count("<tr><td><b>(") == 4 and "the paper says" in text and "does not judge" in text
    table = findings_table(claims)
    assert set(table["claim"]) == {"a", "b", "c", "d"} and set(table["verdict"]) <= {AGREES, DISAGREES, INCONCLUSIVE}


def test_the_page_names_the_runs_that_failed(tmp_path):
    runs, traj, pretrained, grids, fits, boot = make_study()
    lost = "isic/vit/full-cls/seed9"
    message = f"results/runs/{lost}: fine-tuning diverged: the training loss is nan at epoch 1, step 1 of 7"
    grids = pl.concat(
        [
            grids.filter(pl.col("run") != lost),
            pl.DataFrame({"grid": ["similarity"], "run": [lost], "failure": [message]}),
        ]
    )
    runs, traj = (frame.filter(pl.col("run") != lost) for frame in (runs, traj))
    claims, facts = findings(
        runs,
        traj,
        pretrained,
        grids,
        fits,
        boot,
        grid="similarity",
        layer="final",
        similarity="cka",
        k=20,
        paradigms=PARADIGMS,
    )
    assert facts["missing"] == {lost: message}
    assert facts["runs_per_backbone"]["vit"] == SEEDS - 1
    page = tmp_path / "findings.html"
    write_findings_page(claims, facts, page)
    assert "1 run of the study is missing" in page.read_text() and lost in page.read_text()


def test_band_verdict():
    assert band_verdict(0.1, 0.3, high=0.4) == AGREES
    assert band_verdict(0.41, 0.5, high=0.4) == DISAGREES
    assert band_verdict(0.3, 0.5, high=0.4) == INCONCLUSIVE
    assert band_verdict(math.nan, 0.5, high=0.4) == INCONCLUSIVE
    assert band_verdict(0.6, 0.9, low=0.5) == AGREES and band_verdict(0.1, 0.4, low=0.5) == DISAGREES


def test_confidence_intervals_against_references():
    values = np.array([0.2, 0.25, 0.31, 0.28, 0.22])
    mean, lo, hi, n = mean_ci(values, 0.95)
    ref = stats.t.interval(0.95, 4, loc=values.mean(), scale=stats.sem(values))
    assert (mean, n) == (pytest.approx(values.mean()), 5) and (lo, hi) == pytest.approx(ref)
    assert math.isnan(mean_ci([0.3], 0.95)[1])
    # Clopper-Pearson for 5 of 5: the lower bound solves p^5 = 0.025.
    assert share_ci(5, 5, 0.95) == pytest.approx((0.025**0.2, 1.0))


def test_trajectory_shape_by_hand():
    # Drop 0.5 in epoch 1; then steps of -0.1, -0.1, +0.2, -0.1 (mean |step| 0.125); second half = epochs 2.5..5.
    sharp, slope = trajectory_shape(np.array([1.0, 0.5, 0.4, 0.3, 0.5, 0.4]))
    assert sharp == pytest.approx(0.5 - 0.125)
    assert slope == pytest.approx(np.polyfit([3, 4, 5], [0.3, 0.5, 0.4], 1)[0])
