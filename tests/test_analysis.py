"""interval_correlation against a small example worked by hand, with and without outlier removal."""

import numpy as np
import pytest

from repdrift.analysis import interval_correlation

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
