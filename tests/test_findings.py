"""The findings page on a hand-built study whose answers are known: every claim agrees, and flips when its data
flips; seeds never mix, signs are read, degenerate runs are named, and no single run sets a claim (d) verdict."""

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats

from repdrift.analysis.findings import (
    AGREES,
    DISAGREES,
    INCONCLUSIVE,
    band_verdict,
    correlation_claim,
    early_window,
    findings,
    findings_table,
    seed_plan,
    share_ci,
    trajectory_shape,
    write_findings_page,
)
from repdrift.analysis.paper import FitRule, correlation_table, mean_ci

PARADIGMS = {"vit": "supervised", "clip": "clip", "dino": "self_supervised"}
PAPER_POOL = {"vit": "cls", "clip": "cls", "dino": "mean"}
KEYS = {"run": pl.Utf8, "dataset": pl.Utf8, "backbone": pl.Utf8, "method": pl.Utf8, "pool": pl.Utf8, "seed": pl.Int64}
GRID_SCHEMA = {"grid": pl.Utf8, **KEYS, "failure": pl.Utf8, "at_baseline": pl.Boolean}
SEEDS, EPOCHS, FINAL = 10, 10, 3  # layers: blocks 1-2, 3 = the final representation
DATASETS = ("isic", "aptos", "colon", "chest")
# Interval-fit r per backbone and metric (k-NN, ECE): ViT strong, OpenCLIP little / moderate, DINOv2 negligible,
# with the signs the paper's argument implies (k-NN +, ECE -).
FITS = {"vit": (0.95, -0.95), "clip": (0.2, -0.45), "dino": (0.02, -0.03)}


def make_study(
    full_beats_linear=True,
    scratch_loses=True,
    low_similarity=True,
    supervised_decays=True,
    supervised_forgets_less=True,
    vit_most_accurate=True,
    paper_pools=True,
    fits=None,
):
    rng = np.random.default_rng(0)
    runs, traj, grid = [], [], []

    def add(grids, dataset, backbone, method, pool, seed, **metrics):
        keys = dict(run=f"{dataset}/{backbone}/{method}-{pool}/seed{seed}", dataset=dataset, backbone=backbone,
                    method=method, pool=pool, seed=seed)  # fmt: skip
        grid.extend(dict(keys, grid=name, failure=None, at_baseline=False) for name in grids)
        for metric, value in metrics.items():
            if metric.startswith("cka") and metric != "cka_samples":
                runs.extend(dict(keys, metric=metric, layer=layer, value=value) for layer in range(1, FINAL + 1))
            else:
                runs.append(dict(keys, metric=metric, layer=None, value=value))
        return keys

    for backbone in PARADIGMS:
        supervised = backbone == "vit"
        for dataset in DATASETS:  # Table 1 / Table 2 cells, seed 0
            for method in ("full", "linear") + (("scratch",) if supervised else ()):
                for pool in ("cls", "mean"):
                    score = {"full": 0.8, "linear": 0.7, "scratch": 0.5}[method]
                    if not full_beats_linear and method != "scratch":
                        score = 1.5 - score  # linear 0.8, full 0.7
                    if not scratch_loses and method == "scratch":
                        score = 0.95
                    score += 0.05 * (1 if supervised == vit_most_accurate else -1)
                    score += 0.02 * (1 if (pool == PAPER_POOL[backbone]) == paper_pools else -1)
                    keep = 0.75 if supervised == supervised_forgets_less else 0.3
                    grids = (
                        ["table1", "similarity"] if (dataset, method, pool) == ("isic", "full", "cls") else ["table1"]
                    )
                    add(grids, dataset, backbone, method, pool, 0, score=score,
                        **{"knn@20": keep if method == "full" else 0.8})  # fmt: skip
        for seed in range(1, SEEDS):  # the similarity grid: ISIC Full, seeds 0..9 (seed 0 is the Table 1 run)
            add(["similarity"], "isic", backbone, "full", "cls", seed, score=0.8, **{"knn@20": 0.7})
        for seed in range(SEEDS):
            level = (0.3 if low_similarity else 0.8) + rng.normal(0, 0.02)
            keys = dict(run=f"isic/{backbone}/full-cls/seed{seed}", dataset="isic", backbone=backbone,
                        method="full", pool="cls", seed=seed)  # fmt: skip
            runs.extend(dict(keys, metric=m, layer=layer, value=v) for m, v in (("cka", level),
                        ("cka_debiased", level - 0.1)) for layer in range(1, FINAL + 1))  # fmt: skip
            runs.append(dict(keys, metric="cka_samples", layer=None, value=96))
            slope = -0.01 if supervised == supervised_decays else 0.01  # supervised decays, the others recover
            # A warm-up epoch: the sharp drop is epoch 1 -> 2, after it.
            curve = [1.0, 0.95, 0.5] + [0.5 + slope * (e - 2) + rng.normal(0, 0.001) for e in range(3, EPOCHS + 1)]
            for epoch, value in enumerate(curve):
                traj += [dict(keys, epoch=epoch, metric="cka", layer=layer, value=value) for layer in (1, 2, 3)]
    pretrained = pl.DataFrame(
        [dict(backbone=b, pool=p, metric="knn@20", value=0.8) for b in PARADIGMS for p in ("cls", "mean")]
    )
    fit_rows, boot = [], []
    for b, values in (fits or FITS).items():
        for m, r in zip(("knn@20", "knn_ece@20"), values):
            draws = np.clip(r + rng.normal(0, 0.05, 500), -1, 1)
            lo, hi = np.percentile(draws, [2.5, 97.5])
            fit_rows.append(dict(metric=m, layer=FINAL, backbone=b, runs=SEEDS, r=r, r_lo=lo, r_hi=hi, usable=True,
                                 bootstrap=500, bootstrap_valid=500, intervals=8, removed=0, note=""))  # fmt: skip
            boot += [dict(metric=m, layer=FINAL, backbone=b, replicate=i, r=v) for i, v in enumerate(draws)]
    return (
        pl.DataFrame(runs, schema=KEYS | {"metric": pl.Utf8, "layer": pl.Int64, "value": pl.Float64}),
        pl.DataFrame(
            traj, schema=KEYS | {"epoch": pl.Int64, "metric": pl.Utf8, "layer": pl.Int64, "value": pl.Float64}
        ),
        pretrained,
        pl.DataFrame(grid, schema=GRID_SCHEMA),
        pl.DataFrame(fit_rows),
        pl.DataFrame(boot),
    )


OPTIONS = dict(grid="similarity", layer="final", similarity="cka", k=20, paradigms=PARADIGMS, warmup_epochs=1)


def verdicts(**flips):
    claims, facts = findings(*make_study(**flips), **OPTIONS)
    return {c.key: c for c in claims}, facts


def part(claim, text):
    (found,) = [p for p in claim.parts if text in p.label]
    return found


def test_a_study_like_the_paper_agrees_on_every_claim():
    claims, facts = verdicts()
    for claim in claims.values():
        assert claim.verdict == AGREES, [(p.label, p.measured, p.verdict) for p in claim.parts]
    assert facts["runs_per_backbone"] == {"clip": SEEDS, "dino": SEEDS, "vit": SEEDS}
    assert "24 of 24 cells" in claims["a"].parts[0].measured  # 3 backbones x 4 datasets x 2 pools
    assert "8 of 8 cells" in claims["a"].parts[1].measured  # Scratch below both partners, one unit per cell
    level = claims["a"].parts[2].measured
    assert "10 seeds" in level and "n = 96" in level and level.startswith("biased")
    assert "seed 0" in claims["a"].parts[0].measured  # the similarity grid's extra seeds stay out of Table 1 cells
    # (d): 2 "clear" parts for ViT, then the orderings: ViT > OpenCLIP and > DINOv2 on both metrics, OpenCLIP >
    # DINOv2 on ECE (moderate > negligible; little and negligible are one level), OpenCLIP's ECE > its k-NN.
    assert len(claims["d"].parts) == 2 + 4 + 1 + 1
    # (e): ViT above each other backbone (16 cells each), and each backbone's pool (8 cells).
    assert len(claims["e"].parts) == 2 + 3 and "16 of 16 cells" in claims["e"].parts[0].measured


@pytest.mark.parametrize(
    "flip, claim, label",
    [
        ({"full_beats_linear": False}, "a", "Full beats Linear"),
        ({"scratch_loses": False}, "a", "Scratch below"),
        ({"low_similarity": False}, "a", "final similarity"),
        ({"supervised_decays": False}, "b", "decaying"),
        ({"supervised_forgets_less": False}, "c", "forgets less"),
        ({"fits": {**FITS, "vit": (0.05, -0.05)}}, "d", "vit"),
        ({"vit_most_accurate": False}, "e", "more accurate"),
        ({"paper_pools": False}, "e", "better with"),
    ],
)
def test_a_verdict_flips_when_the_data_flips(flip, claim, label):
    claims, _ = verdicts(**flip)
    assert claims[claim].verdict == DISAGREES
    assert any(p.verdict == DISAGREES for p in claims[claim].parts if label in p.label)
    assert all(c.verdict == AGREES for key, c in claims.items() if key != claim)


# --- (a) the level in the paper's terms ---------------------------------------------------------------------------
def test_the_level_is_judged_with_the_paper_estimator_and_both_must_agree():
    runs, *rest = make_study()
    # The configured estimator is the debiased one: the level is still read from the biased one.
    claims, _ = findings(runs, *rest, **(OPTIONS | {"similarity": "cka_debiased"}))
    assert part(claims[0], "vit (supervised ViT): final similarity").verdict == AGREES
    # The debiased mean on the other side of 0.4: inconclusive, not agreeing.
    shifted = runs.with_columns(
        value=pl.when(pl.col("metric") == "cka_debiased").then(pl.col("value") + 0.3).otherwise("value")
    )
    claims, _ = findings(shifted, *rest, **OPTIONS)
    level = part(claims[0], "vit (supervised ViT): final similarity")
    assert level.verdict == INCONCLUSIVE and "opposite sides of 0.4" in level.measured


# --- (b) the drop where it happens ---------------------------------------------------------------------------------
def test_the_early_window_covers_the_warm_up():
    assert early_window(0) == 1 and early_window(1) == 2 and early_window(0.5) == 2
    # Warm-up epoch 1 barely moves (0.95); the drop is epoch 1 -> 2. Over the window 0-2: (1.0 - 0.5) / 2 = 0.25 per
    # epoch; after it steps of 0.02, 0.02, 0.01 (mean 0.05 / 3).
    values = np.array([1.0, 0.95, 0.5, 0.48, 0.46, 0.47])
    sharp, _ = trajectory_shape(values, window=2)
    assert sharp == pytest.approx(0.25 - 0.05 / 3)
    # Read at epoch 0 -> 1 only, the same run has no sharp first drop: 0.05 against a mean later step of 0.1.
    assert trajectory_shape(values, window=1)[0] == pytest.approx(0.05 - (0.45 + 0.02 + 0.02 + 0.01) / 4)
    assert math.isnan(trajectory_shape(values[:2], window=2)[0])


def test_trajectory_shape_by_hand():
    # Drop 0.5 in epoch 1; then steps of -0.1, -0.1, +0.2, -0.1 (mean |step| 0.125); second half = epochs 2.5..5.
    sharp, slope = trajectory_shape(np.array([1.0, 0.5, 0.4, 0.3, 0.5, 0.4]))
    assert sharp == pytest.approx(0.5 - 0.125)
    assert slope == pytest.approx(np.polyfit([3, 4, 5], [0.3, 0.5, 0.4], 1)[0])


def test_the_drop_after_the_warm_up_is_found_only_with_the_window():
    claims, _ = verdicts()
    assert part(claims["b"], "vit (supervised ViT): sharp").verdict == AGREES
    claims, _ = findings(*make_study(), **(OPTIONS | {"warmup_epochs": 0}))
    assert part(claims[1], "vit (supervised ViT): sharp").verdict == DISAGREES  # epoch 0 -> 1: 0.05 only


# --- seeds are never mixed -----------------------------------------------------------------------------------------
def test_a_failed_seed_drops_its_cell_by_name_instead_of_mixing_seeds():
    runs, traj, pretrained, grids, fits, boot = make_study()
    lost = "isic/vit/full-cls/seed0"  # the Table 1 cell isic/vit/full/cls keeps only the similarity grid's 1..9
    grids = grids.with_columns(failure=pl.when(pl.col("run") == lost).then(pl.lit("diverged")).otherwise("failure"))
    runs, traj = (frame.filter(pl.col("run") != lost) for frame in (runs, traj))
    claims, facts = findings(runs, traj, pretrained, grids, fits, boot, **OPTIONS)
    full_linear = claims[0].parts[0].measured
    assert "23 of 23 cells" in full_linear and "seed 0;" in full_linear
    assert "1 cell dropped: isic/vit/full/cls (a run of the common seeds failed)" in full_linear
    assert facts["missing"] == {lost: "diverged"} and facts["runs_per_backbone"]["vit"] == SEEDS - 1


def test_cells_that_share_no_seed_are_dropped_not_mixed():
    runs, _, _, grids, *_ = make_study()
    # The chest cells of vit were run with seed 3 only: seed 0 is the common one (most cells), they are dropped.
    moved = (pl.col("dataset") == "chest") & (pl.col("backbone") == "vit")
    runs, grids = (f.with_columns(seed=pl.when(moved).then(3).otherwise("seed")) for f in (runs, grids))
    plan = seed_plan(runs.filter(pl.col("metric") == "score"), grids.unique("run"))
    assert plan.seeds == [0]
    assert set(plan.rows["seed"]) == {0} and "chest" not in set(
        plan.rows.filter(pl.col("backbone") == "vit")["dataset"]
    )
    assert plan.dropped["chest/vit/full/cls"] == "not run with seed 0"
    assert len(plan.dropped) == 6  # Full, Linear, Scratch x 2 pools
    # No seed common to every cell and no fallback: the similarity grid's seeds 1..9 stay out too.
    assert plan.rows.filter(pl.col("dataset") == "isic", pl.col("backbone") == "vit", pl.col("method") == "full",
                            pl.col("pool") == "cls").height == 1  # fmt: skip


# --- degenerate runs -------------------------------------------------------------------------------------------------
def test_runs_at_the_majority_baseline_are_named(tmp_path):
    runs, traj, pretrained, grids, fits, boot = make_study()
    probe = "isic/clip/linear-cls/seed0"
    grids = grids.with_columns(
        at_baseline=pl.col("run") == probe,
        score=pl.lit(0.419),
        majority=pl.lit(0.419),
        chance=pl.lit(1 / 7),
    )
    claims, facts = findings(runs, traj, pretrained, grids, fits, boot, **OPTIONS)
    assert list(facts["degenerate"]) == [probe] and "41.90 against 41.90" in facts["degenerate"][probe]
    assert probe in claims[0].parts[0].measured  # Full beats Linear reads it
    assert probe in part(claims[4], "more accurate than clip").measured
    assert probe not in part(claims[4], "more accurate than dino").measured
    page = tmp_path / "findings.html"
    write_findings_page(claims, facts, page)
    assert "1 run at or below the majority-class baseline" in page.read_text() and probe in page.read_text()


# --- (d): signs and usable fits ------------------------------------------------------------------------------------
def test_a_wrong_signed_relation_is_not_strong():
    # ViT's k-NN relation clear but negative: more similarity, more forgetting, against the paper's argument.
    claims, _ = verdicts(fits={**FITS, "vit": (-0.95, -0.95)})
    d = claims["d"]
    assert part(d, "clear relation with knn@20 (expected sign +1)").verdict == DISAGREES
    assert "r = -0.95" in part(d, "clear relation with knn@20").measured
    # ViT with k-NN (+1 x r = -0.95) against DINOv2's |r| 0.02: not stronger.
    assert part(d, "with knn@20 (clear, +1 x r) > dino").verdict == DISAGREES
    # ECE has no implied sign: a clear relation of either sign is clear.
    assert part(d, "clear relation with knn_ece@20 (either sign)").verdict == AGREES
    claims, _ = verdicts(fits={**FITS, "vit": (0.95, 0.95)})
    assert part(claims["d"], "clear relation with knn_ece@20").verdict == AGREES


def test_relations_of_certain_and_different_signs_are_not_compared():
    # OpenCLIP's ECE relation clearly positive, ViT's clearly negative: |r| says nothing about which is stronger.
    claims, _ = verdicts(fits={**FITS, "clip": (0.2, 0.45)})
    pair = part(claims["d"], "with knn_ece@20 (clear, |r|) > clip")
    assert pair.verdict == INCONCLUSIVE and "their signs differ" in pair.measured
    # DINOv2's negligible r of either sign (its CI spans 0) is still compared.
    assert part(claims["d"], "with knn_ece@20 (clear, |r|) > dino").verdict == AGREES
    # OpenCLIP's own ECE against its k-NN: no common sign to differ in, compared by |r|.
    assert part(claims["d"], "clip (OpenCLIP) with knn_ece@20 (moderate, |r|) > clip").verdict == AGREES


def test_an_unusable_fit_leaves_its_parts_inconclusive():
    runs, traj, pretrained, grid, fits, boot = make_study()
    unfit = (pl.col("backbone") == "dino") & (pl.col("metric") == "knn@20")
    fits = fits.with_columns(
        r=pl.when(unfit).then(None).otherwise("r"),
        usable=pl.when(unfit).then(False).otherwise("usable"),
        note=pl.when(unfit).then(pl.lit("too few intervals: 2 with at least 2 runs, 4 needed")).otherwise("note"),
    )
    claims, _ = findings(runs, traj, pretrained, grid, fits, boot.filter(~unfit), **OPTIONS)
    dino_knn = [p for p in claims[3].parts if "(DINOv2) with knn@20" in p.label]
    assert len(dino_knn) == 1 and all(p.verdict == INCONCLUSIVE for p in dino_knn)
    assert all("not usable (too few intervals" in p.measured for p in dino_knn)
    assert all(p.verdict == AGREES for p in claims[3].parts if p not in dino_knn)
    # A mostly degenerate bootstrap: r exists, but the fit is not usable either.
    fits = fits.with_columns(usable=pl.when(pl.col("backbone") == "vit").then(False).otherwise("usable"))
    claims, _ = findings(runs, traj, pretrained, grid, fits, boot, **OPTIONS)
    assert all(p.verdict == INCONCLUSIVE for p in claims[3].parts if "vit" in p.label)


def paper_like_grid(extreme: bool, seed: int = 1):
    """The paper's similarity study in miniature: 20 runs per backbone, CKA 0.30-0.50, ViT's k-NN rising and ECE
    falling with it, OpenCLIP's ECE falling less, DINOv2's metrics noise; `extreme` adds one DINOv2 run far above
    the others' similarity whose k-NN and ECE continue ViT's trend."""
    rng = np.random.default_rng(seed)
    rows, grid = [], []
    slopes = {"vit": (1.0, -0.6), "clip": (0.05, -0.3), "dino": (0.0, 0.0)}
    for backbone, (knn_slope, ece_slope) in slopes.items():
        runs = [(s, rng.uniform(0.30, 0.50)) for s in range(20)] + (
            [(20, 0.85)] if extreme and backbone == "dino" else []
        )
        for seed_, cka in runs:
            knn = 0.5 + knn_slope * (cka - 0.4) + rng.normal(0, 0.01)
            ece = 0.1 + ece_slope * (cka - 0.4) + rng.normal(0, 0.01)
            if seed_ == 20:
                knn, ece = 0.5 + 1.0 * (cka - 0.4), 0.1 - 0.6 * (cka - 0.4)
            keys = dict(run=f"isic/{backbone}/full-cls/seed{seed_}", dataset="isic", backbone=backbone, method="full",
                        pool="cls", seed=seed_)  # fmt: skip
            rows += [dict(keys, metric="cka", layer=1, value=cka), dict(keys, metric="knn@20", layer=None, value=knn),
                     dict(keys, metric="knn_ece@20", layer=None, value=ece)]  # fmt: skip
            grid.append(dict(keys, grid="similarity"))
    return pl.DataFrame(rows), pl.DataFrame(grid)


def claim_d(rule: FitRule, extreme: bool):
    runs, grid = paper_like_grid(extreme)
    fits, _, boot = correlation_table(runs, grid, "similarity", ["knn@20", "knn_ece@20"], "cka", rule)
    claim = correlation_claim(fits, boot, 1, 20, PARADIGMS, 0.95)
    return {p.label: p.verdict for p in claim.parts}, fits


def test_one_extreme_run_does_not_flip_a_claim_d_verdict():
    rule = FitRule(n_intervals=10, outliers="iqr", min_intervals=5, min_interval_runs=2)  # config/paper.yaml's
    before, _ = claim_d(rule, extreme=False)
    after, fits = claim_d(rule, extreme=True)
    assert list(before.values()).count(AGREES) >= 5  # a study whose verdicts are decided, not all inconclusive
    assert after == before
    dino = fits.filter(pl.col("backbone") == "dino", pl.col("metric") == "knn@20").row(0, named=True)
    assert dino["runs"] == 21 and "isic/dino/full-cls/seed20: similarity outlier" in dino["excluded_runs"]
    # The rule is what protects it: placing the intervals over the raw range lets that run form an interval of
    # its own and set DINOv2's line.
    loose = FitRule(n_intervals=10, outliers="none", min_intervals=3, min_interval_runs=1)
    assert claim_d(loose, extreme=True)[0] != claim_d(loose, extreme=False)[0]


# --- the page and the statistics -------------------------------------------------------------------------------------
def test_page_has_one_row_per_claim_and_a_part_table(tmp_path):
    # ViT's |r| 0.5 is not told apart from OpenCLIP's 0.45 with ECE: inconclusive, not disagreeing.
    claims, facts = findings(*make_study(fits={**FITS, "vit": (0.5, -0.5)}), **OPTIONS)
    assert claims[3].verdict == INCONCLUSIVE
    page = tmp_path / "findings.html"
    write_findings_page(claims, facts, page)
    text = page.read_text()
    assert text.count("<tr><td><b>(") == 5 and "the paper says" in text and "does not judge" in text
    table = findings_table(claims)
    assert set(table["claim"]) == {"a", "b", "c", "d", "e"}
    assert set(table["verdict"]) <= {AGREES, DISAGREES, INCONCLUSIVE}


def test_the_page_names_the_runs_that_failed(tmp_path):
    runs, traj, pretrained, grids, fits, boot = make_study()
    lost = "isic/vit/full-cls/seed9"
    message = f"results/runs/{lost}: fine-tuning diverged: the training loss is nan at epoch 1, step 1 of 7"
    grids = grids.with_columns(failure=pl.when(pl.col("run") == lost).then(pl.lit(message)).otherwise("failure"))
    runs, traj = (frame.filter(pl.col("run") != lost) for frame in (runs, traj))
    claims, facts = findings(runs, traj, pretrained, grids, fits, boot, **OPTIONS)
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


def test_intervals_stay_in_the_quantity_range():
    # Three ECEs near 0: the t interval reaches below 0 (lower bound -0.0151), clipped to the range [0, 1].
    values = [0.001, 0.004, 0.010]
    _, lo, hi, _ = mean_ci(values, 0.95)
    assert lo < 0
    _, lo_clipped, hi_clipped, _ = mean_ci(values, 0.95, (0.0, 1.0))
    assert (lo_clipped, hi_clipped) == (0.0, pytest.approx(hi))
