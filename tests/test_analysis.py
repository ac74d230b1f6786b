"""interval_correlation against a small example worked by hand, with and without outlier removal."""

import numpy as np
import polars as pl
import pytest

from repdrift.analysis.paper import (
    METRIC_OUTLIER,
    SIMILARITY_OUTLIER,
    SPARSE,
    FitRule,
    correlation_table,
    interval_correlation,
    resolve_layer,
    similarity_space_table,
    sweep_epss,
    sweep_etas,
    sweep_table,
)
from repdrift.errors import ConfigError

# Centres 0, 0.5, 1 (n_intervals=3). Interval 1.0 holds 7, 8, 8, 8, 100: quartiles 8 and 8, IQR 0, so 7 and
# 100 are outliers. Interval means: with IQR removal 2, 5, 8 (a perfect line 2 + 6x); without, 2, 5, 26.2.
SIMILARITY = [0.0, 0.04, 0.5, 0.45, 1.0, 0.98, 0.99, 1.0, 0.97]
METRIC = [1.0, 3.0, 4.0, 6.0, 7.0, 8.0, 8.0, 8.0, 100.0]


def test_hand_example_with_iqr_outliers():
    fit = interval_correlation(SIMILARITY, METRIC, n_intervals=3, outliers="iqr", n_bootstrap=200)
    np.testing.assert_allclose(fit.centres, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(fit.means, [2.0, 5.0, 8.0])
    np.testing.assert_array_equal(fit.counts, [2, 2, 3])
    assert fit.removed == 2
    assert fit.slope == pytest.approx(6.0) and fit.intercept == pytest.approx(2.0) and fit.r == pytest.approx(1.0)


def test_each_run_keeps_its_interval_and_outlier_flag():
    fit = interval_correlation(SIMILARITY, METRIC, n_intervals=3, outliers="iqr", n_bootstrap=50)
    np.testing.assert_allclose(fit.assigned, [0.0, 0.0, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0])
    np.testing.assert_array_equal(fit.kept, [True] * 4 + [False, True, True, True, False])  # 7 and 100 removed
    assert fit.boot.shape == (50,)


def test_a_run_far_from_the_others_is_a_similarity_outlier_and_places_no_interval():
    # Similarity quartiles of the ten runs: 0.4625 and 1.0, upper fence 1.81: the run at 3.0 is removed before the
    # intervals are placed, so the centres and the line are the hand example's.
    fit = interval_correlation(SIMILARITY + [3.0], METRIC + [50.0], n_intervals=3, n_bootstrap=200)
    np.testing.assert_allclose(fit.centres, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(fit.means, [2.0, 5.0, 8.0])
    assert fit.excluded[-1] == SIMILARITY_OUTLIER and np.isnan(fit.assigned[-1]) and fit.removed == 3
    assert list(fit.excluded[4:9]) == [METRIC_OUTLIER, "", "", "", METRIC_OUTLIER]
    assert fit.r == pytest.approx(1.0) and fit.usable
    # Without removal it stretches the range to 3.0 and forms an interval of its own.
    loose = interval_correlation(SIMILARITY + [3.0], METRIC + [50.0], n_intervals=3, outliers="none", n_bootstrap=50)
    np.testing.assert_allclose(loose.centres, [0.0, 1.5, 3.0])


def test_intervals_of_too_few_runs_are_not_used_and_a_fit_needs_enough_intervals():
    # Counts 2, 2, 3: with at least 3 runs per interval only the top interval is left, no line.
    fit = interval_correlation(SIMILARITY, METRIC, n_intervals=3, n_bootstrap=100, min_interval_runs=3)
    assert not fit.usable and fit.note.startswith("too few intervals: 1 with at least 3 runs, 3 needed")
    assert np.isnan(fit.r) and np.isnan(fit.r_ci).all() and fit.centres.tolist() == [1.0]
    assert list(fit.excluded[:4]) == [SPARSE] * 4
    # 2 runs per interval are enough for all three (though most resamples of 9 runs do not keep them so), but not
    # for a rule that needs 4 intervals.
    fit = interval_correlation(SIMILARITY, METRIC, 3, min_interval_runs=2, n_bootstrap=100)
    assert fit.r == pytest.approx(1.0) and fit.note.startswith("mostly degenerate bootstrap")
    fit = interval_correlation(SIMILARITY, METRIC, 3, min_intervals=4, min_interval_runs=2, n_bootstrap=100)
    assert fit.note.startswith("too few intervals: 3 with at least 2 runs, 4 needed")


def test_a_fit_whose_replicates_are_mostly_degenerate_is_not_usable():
    # Five runs, 2 per interval needed: most resamples repeat runs and leave fewer than three such intervals.
    sim, metric = [0.1, 0.2, 0.5, 0.55, 0.9], [1.0, 1.5, 2.0, 2.2, 3.0]
    fit = interval_correlation(sim, metric, n_intervals=3, outliers="none", n_bootstrap=400, min_interval_runs=1)
    assert fit.usable and fit.valid > 200
    fit = interval_correlation([0.1, 0.12, 0.5, 0.52, 0.9, 0.92], [1.0, 1.1, 2.0, 2.1, 3.0, 3.1], n_intervals=3,
                               outliers="none", n_bootstrap=400, min_interval_runs=2)  # fmt: skip
    assert np.isfinite(fit.r) and fit.valid < 200
    assert fit.note == f"mostly degenerate bootstrap: {fit.valid} of 400 replicates valid" and not fit.usable


def test_hand_example_without_outlier_removal():
    fit = interval_correlation(SIMILARITY, METRIC, n_intervals=3, outliers="none", n_bootstrap=200)
    np.testing.assert_allclose(fit.means, [2.0, 5.0, 26.2])
    assert fit.removed == 0
    # By hand: Sxx = 0.5, Sxy = 12.1, Syy = 348.02667 -> slope 24.2, intercept 11.0667 - 12.1, r = 12.1 / sqrt(174.013)
    assert fit.slope == pytest.approx(24.2)
    assert fit.intercept == pytest.approx(33.2 / 3 - 12.1)
    assert fit.r == pytest.approx(12.1 / np.sqrt(0.5 * 348.026667), rel=1e-6)
    lo, hi = fit.r_ci
    assert -1 <= lo <= hi <= 1


def test_empty_intervals_are_dropped_and_bootstrap_brackets_r():
    rng = np.random.default_rng(0)
    sim = np.concatenate([rng.uniform(0.0, 0.3, 40), rng.uniform(0.7, 1.0, 40)])  # nothing near the middle
    metric = 0.5 + 0.4 * sim + rng.normal(0, 0.02, sim.size)
    fit = interval_correlation(sim, metric, n_intervals=10)
    assert len(fit.centres) < 10 and fit.counts.sum() + fit.removed == 80
    assert fit.r > 0.9 and fit.r_ci[0] <= fit.r <= fit.r_ci[1] + 1e-12


@pytest.mark.parametrize(
    "sim, metric, kwargs, message",
    [
        ([0.1, 0.2], [1.0, 2.0, 3.0], {}, "differ in length"),
        ([0.1, np.nan, 0.3], [1.0, 2.0, 3.0], {}, "finite"),
        ([0.5, 0.5, 0.5], [1.0, 2.0, 3.0], {}, "different similarities"),
        ([0.1, 0.2, 0.3], [1.0, 1.0, 1.0], {}, "constant metric"),
        ([0.1, 0.2, 0.3], [1.0, 2.0, 3.0], {"outliers": "zscore"}, "outliers"),
    ],
)
def test_bad_input_is_one_clear_error(sim, metric, kwargs, message):
    with pytest.raises(ValueError, match=message):
        interval_correlation(sim, metric, **kwargs)


def _within_fences(values):
    q1, q3 = np.percentile(values, [25, 75])
    spread = 1.5 * (q3 - q1)
    return (values >= q1 - spread) & (values <= q3 + spread)


def _loop_reference(similarity, metric, n_intervals, outliers, n_bootstrap, min_intervals=3, min_runs=1, seed=0):
    """The module docstring's steps one run set and one replicate at a time, written plainly."""

    def intervals(sim, met):
        inside = _within_fences(sim) if outliers == "iqr" else np.ones(sim.size, dtype=bool)
        centres = np.linspace(sim[inside].min(), sim[inside].max(), n_intervals)
        nearest = np.abs(sim[:, None] - centres[None, :]).argmin(axis=1)
        kept = inside.copy()
        used_centres, means, counts = [], [], []
        for i, centre in enumerate(centres):
            members = np.flatnonzero((nearest == i) & inside)
            if members.size == 0:
                continue
            if outliers == "iqr":
                kept[members] = _within_fences(met[members])
            if kept[members].sum() < min_runs:
                kept[members] = False  # an interval of too few runs: not used
                continue
            used_centres.append(centre)
            means.append(met[members[kept[members]]].mean())
            counts.append(int(kept[members].sum()))
        assigned = np.where(inside, centres[nearest], np.nan)
        return np.array(used_centres), np.array(means), np.array(counts), assigned, kept

    rng = np.random.default_rng(seed)
    boot = np.full(n_bootstrap, np.nan)
    for b in range(n_bootstrap):
        pick = rng.integers(0, similarity.size, similarity.size)
        if np.ptp(similarity[pick]) == 0:
            continue
        x, y = intervals(similarity[pick], metric[pick])[:2]
        if x.size >= min_intervals and np.ptp(y) > 0:
            boot[b] = np.corrcoef(x, y)[0, 1]
    valid = boot[np.isfinite(boot)]
    r_ci = tuple(np.percentile(valid, [2.5, 97.5])) if valid.size else (np.nan, np.nan)
    return intervals(similarity, metric), boot, r_ci


def _bootstrap_cases():
    rng = np.random.default_rng(7)
    sim = rng.uniform(0.5, 1.0, 60)
    metric = 0.2 + 0.5 * sim + rng.normal(0, 0.03, 60)
    outlying = metric + (rng.uniform(size=60) < 0.15) * rng.normal(0, 1.0, 60)
    quarters = np.round(rng.uniform(0, 1, 40) * 4) / 4  # ties: runs on centres and on midpoints between them
    constant = np.full(30, 0.1)  # groups of identical values whose means differ only by rounding, by group size
    constant[[3, 17]] = [0.7, 0.3]
    large = rng.uniform(0, 1, 400)  # groups of > 128 runs: numpy's pairwise summation splits them
    # Resamples without the four ordinary runs have a range whose linspace step underflows to 0.
    denormal = np.concatenate([rng.integers(0, 4, 36) * 5e-324, [0.5, 0.5, 1.0, 1.0]])
    far = np.concatenate([rng.normal(0.5, 0.02, 19), [0.9]])  # one run far from the others: a similarity outlier
    return [
        (sim, outlying, 10, "iqr", 3, 1),
        (sim, outlying, 10, "none", 3, 1),
        (sim, outlying, 10, "iqr", 5, 2),
        (quarters, np.round(quarters + rng.normal(0, 0.2, 40), 1), 5, "iqr", 3, 1),
        (quarters, np.round(quarters + rng.normal(0, 0.2, 40), 1), 5, "iqr", 4, 3),
        (np.array([0.1, 0.2, 0.4, 0.9]), np.array([1.0, 2.0, 2.5, 4.0]), 3, "none", 3, 1),  # tiny n: nan replicates
        (rng.uniform(0, 1, 30), constant, 4, "iqr", 3, 1),  # nan replicates: constant means without runs 3 and 17
        (rng.uniform(0, 1, 30), constant, 4, "none", 3, 1),
        (large, large + rng.standard_t(2, 400), 3, "iqr", 3, 1),
        (denormal, rng.normal(size=40), 10, "iqr", 3, 1),
        (far, far + rng.normal(0, 0.05, 20), 6, "iqr", 3, 2),
    ]


def test_centres_are_linspace_row_by_row_even_where_a_step_underflows():
    from repdrift.analysis.paper import _centres

    lo, hi = np.array([0.0, 0.0, 0.2, -3.0]), np.array([1e-323, 1.0, 0.9, 5e-324])
    expected = np.stack([np.linspace(a, b, 10) for a, b in zip(lo, hi)])
    np.testing.assert_array_equal(_centres(lo, hi, 10), expected)


@pytest.mark.parametrize("case", range(len(_bootstrap_cases())))
def test_vectorised_bootstrap_matches_a_loop_over_replicates(case):
    sim, metric, n_intervals, outliers, min_intervals, min_runs = _bootstrap_cases()[case]
    rule = dict(min_intervals=min_intervals, min_interval_runs=min_runs)
    with np.errstate(divide="ignore", invalid="ignore"):  # the denormal case divides by zero variances
        fit = interval_correlation(sim, metric, n_intervals=n_intervals, outliers=outliers, n_bootstrap=300, **rule)
        (centres, means, counts, assigned, kept), boot, r_ci = _loop_reference(
            sim, metric, n_intervals, outliers, 300, min_intervals, min_runs
        )
    for ours, reference in [
        (fit.centres, centres),
        (fit.means, means),
        (fit.counts, counts),
        (fit.assigned, assigned),
        (fit.kept, kept),
    ]:
        np.testing.assert_array_equal(ours, reference)
    assert np.isfinite(boot).any() and (np.isnan(boot).any() or case not in (4, 5, 6, 7, 9, 10))  # nan covered
    np.testing.assert_allclose(fit.boot, boot, rtol=0, atol=1e-12)  # nan positions must match too
    np.testing.assert_allclose(fit.r_ci, r_ci, rtol=0, atol=1e-12)


# --- the study tables --------------------------------------------------------------------------------------------


def long_rows(run: str, dataset: str, backbone: str, method: str, seed: int, **metrics) -> list[dict]:
    """runs.parquet rows of one run; `cka` is (block 1, final) and lands on layers 1 and 2."""
    keys = dict(run=run, dataset=dataset, backbone=backbone, method=method, pool="cls", seed=seed)
    rows = []
    for metric, value in metrics.items():
        if metric.startswith("cka"):
            rows += [dict(keys, metric=metric, layer=layer, value=v) for layer, v in enumerate(value, start=1)]
        else:
            rows.append(dict(keys, metric=metric, layer=None, value=value))
    return rows


def study(grid_size: int = 12):
    """A similarity grid of Full ISIC runs per backbone whose k-NN rises with CKA, plus runs outside the grid
    (Linear runs at CKA 1 with the pre-trained k-NN, Scratch and other-dataset runs) that would bend the fit."""
    rng = np.random.default_rng(0)
    rows, grid = [], []
    for backbone in ("vit", "dino"):
        for seed in range(grid_size):
            cka = 0.3 + 0.4 * seed / (grid_size - 1)
            run = f"isic/{backbone}/full-cls/seed{seed}"
            rows += long_rows(
                run,
                "isic",
                backbone,
                "full",
                seed,
                cka=[cka + 0.1, cka],
                cka_debiased=[cka, cka - 0.1],
                score=0.8,
                test_loss=0.5,
                ece=0.1,
                **{"knn@20": 0.2 + cka + rng.normal(0, 0.01)},
            )
            grid.append(run)
        rows += long_rows(
            f"isic/{backbone}/linear-cls/seed0",
            "isic",
            backbone,
            "linear",
            0,
            cka=[1.0, 1.0],
            cka_debiased=[1.0, 1.0],
            score=0.7,
            test_loss=0.6,
            ece=0.2,
            **{"knn@20": 0.1},
        )
        rows += long_rows(
            f"colon/{backbone}/full-cls/seed0",
            "colon",
            backbone,
            "full",
            0,
            cka=[0.95, 0.9],
            cka_debiased=[0.9, 0.85],
            score=0.9,
            test_loss=0.2,
            ece=0.05,
            **{"knn@20": 0.05},
        )
    rows += long_rows(
        "isic/vit/scratch-cls/seed0",
        "isic",
        "vit",
        "scratch",
        0,
        cka=[0.05, 0.02],
        cka_debiased=[0.01, 0.0],
        score=0.5,
        test_loss=1.0,
        ece=0.3,
        **{"knn@20": 0.9},
    )
    runs = pl.DataFrame(
        rows,
        schema={
            "run": pl.Utf8,
            "dataset": pl.Utf8,
            "backbone": pl.Utf8,
            "method": pl.Utf8,
            "pool": pl.Utf8,
            "seed": pl.Int64,
            "metric": pl.Utf8,
            "layer": pl.Int64,
            "value": pl.Float64,
        },
    )
    grids = pl.DataFrame({"grid": ["similarity"] * len(grid), "run": grid})
    return runs, grids


def test_correlation_uses_only_the_similarity_grid_runs():
    runs, grids = study()
    fits, points, boot = correlation_table(runs, grids, "similarity", ["knn@20"], "cka", FitRule(4, "none", 3, 1))
    assert fits.height == 2 * 2  # layer x backbone
    assert set(fits["runs"]) == {12}
    assert set(fits["domain"]) == {"natural"}
    grid_only = runs.join(grids, on="run", how="semi")
    for backbone in ("vit", "dino"):
        mine = grid_only.filter(pl.col("backbone") == backbone)
        x = mine.filter((pl.col("metric") == "cka") & (pl.col("layer") == 2)).sort("run")["value"]
        y = mine.filter(pl.col("metric") == "knn@20").sort("run")["value"]
        expected = interval_correlation(x, y, n_intervals=4, outliers="none")
        row = fits.filter((pl.col("backbone") == backbone) & (pl.col("layer") == 2)).row(0, named=True)
        assert row["r"] == pytest.approx(expected.r) and row["slope"] == pytest.approx(expected.slope)
        assert row["r"] > 0.95  # the outside runs (k-NN 0.1 at CKA 1, 0.9 at CKA 0.02) would have broken this
        got = points.filter((pl.col("backbone") == backbone) & (pl.col("layer") == 2))
        assert got.height == 12 and got["kept"].all()
        means = got.group_by("centre").agg(pl.col("value").mean()).sort("centre")
        np.testing.assert_allclose(means["centre"].to_numpy(), expected.centres)
        np.testing.assert_allclose(means["value"].to_numpy(), expected.means)
        replicates = boot.filter((pl.col("backbone") == backbone) & (pl.col("layer") == 2))["r"].to_numpy()
        assert replicates.size == 1000 and row["bootstrap_valid"] == np.isfinite(replicates).sum()
        assert row["r_lo"] == pytest.approx(np.percentile(replicates[np.isfinite(replicates)], 2.5))


def test_correlation_reads_the_chosen_estimator():
    runs, grids = study()
    biased = correlation_table(runs, grids, "similarity", ["knn@20"], "cka", FitRule(4, "none", 3, 1))[0]
    debiased = correlation_table(runs, grids, "similarity", ["knn@20"], "cka_debiased", FitRule(4, "none", 3, 1))[0]
    assert set(debiased["similarity_metric"]) == {"cka_debiased"}
    # Shifted similarities: the same r, another intercept.
    assert biased["r"].to_list() == pytest.approx(debiased["r"].to_list())
    assert biased["intercept"].to_list() != pytest.approx(debiased["intercept"].to_list())


def test_a_missing_grid_is_a_config_error():
    runs, grids = study()
    with pytest.raises(ConfigError, match="analysis.similarity_grid"):
        correlation_table(runs, grids, "nope", ["knn@20"], "cka", FitRule(4, "none", 3, 1))


def test_layers_final_is_the_last_one_and_blocks_are_checked():
    runs, _ = study()
    assert resolve_layer(runs, "final") == 2 and resolve_layer(runs, 1) == 1
    for bad in (2, 0, "last"):
        with pytest.raises(ConfigError, match="analysis.cka_layer"):
            resolve_layer(runs, bad)


def test_similarity_space_against_the_linear_probe():
    runs, _ = study(grid_size=3)
    space = similarity_space_table(runs, "final", "cka", "loss")
    # Linear runs are the probes, not points; colon has no Linear run, so its Full run is left out.
    assert set(space["method"]) == {"full", "scratch"} and set(space["dataset"]) == {"isic"}
    row = space.filter(pl.col("run") == "isic/vit/scratch-cls/seed0").row(0, named=True)
    assert row["similarity"] == 0.02
    assert row["divergence"] == pytest.approx(abs(1.0 - 0.6) / 1.0)  # |L_ft - L_probe| / max
    full = space.filter(pl.col("run") == "isic/vit/full-cls/seed0").row(0, named=True)
    assert full["divergence"] == pytest.approx(0.1 / 0.6)
    by_score = similarity_space_table(runs, "final", "cka", "accuracy")
    assert by_score.filter(pl.col("run") == "isic/vit/full-cls/seed0")["divergence"][0] == pytest.approx(0.1)


def test_the_default_sweep_spans_every_run():
    runs, _ = study(grid_size=3)
    space = similarity_space_table(runs, "final", "cka", "loss")
    etas = sweep_etas(space)
    assert etas[0] == 0 and etas[-1] == pytest.approx(1 - 0.02) and len(etas) == 11
    sweep = sweep_table(space, etas, [1.0])
    widest = sweep.filter(pl.col("eta") == etas[-1])
    assert (widest["share"] == 1.0).all()  # at eta = 1 - min similarity every run is inside
    assert sweep.filter(pl.col("eta") == 0)["inside"].sum() == 0
    # Per method: the Scratch run (similarity 0.02) is not pooled with the Full runs.
    scratch = sweep.filter(pl.col("method") == "scratch", pl.col("eta") == etas[1])
    assert scratch["runs"].to_list() == [1] and scratch["inside"].to_list() == [0]
    epss = sweep_epss(space)
    assert epss[0] == 0 and epss[-1] == pytest.approx(space["divergence"].max(), abs=1e-4)
    assert epss[-1] >= space["divergence"].max()
