"""Procrustes, SVCCA / PWCCA, RSA and mutual k-NN against scipy, a published implementation's numbers and
hand-worked cases, with their invariances and bad input."""

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.distance import pdist
from scipy.stats import ortho_group, spearmanr

from repdrift.metrics import mutual_knn, procrustes, pwcca, rsa, svcca


@pytest.fixture
def xy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 12))
    y = np.tanh(x @ rng.standard_normal((12, 7))) + 0.5 * rng.standard_normal((60, 7))
    return x, y


def test_procrustes_is_the_value_of_scipys_optimal_rotation(xy):
    x, y = xy
    y = np.hstack([y, np.zeros((60, 5))])  # same width for scipy
    xc, yc = x - x.mean(0), y - y.mean(0)
    xc, yc = xc / np.linalg.norm(xc), yc / np.linalg.norm(yc)
    rotation, _ = orthogonal_procrustes(xc, yc)  # argmin ||xc R - yc||
    distance = np.sum((xc @ rotation - yc) ** 2)
    assert procrustes(x, y) == pytest.approx(1 - distance / 2, rel=1e-10)


def test_procrustes_is_1_for_identical_float32_features_with_large_means():
    # Centring only one side would add an error of order eps x mean^2 / spread^2: 0.99997 here.
    x = (np.random.default_rng(5).standard_normal((12, 8)) * 0.1 + np.linspace(-3, 3, 8)).astype(np.float32)
    assert procrustes(x, x) == pytest.approx(1.0, abs=1e-6)


def test_procrustes_invariances(xy):
    x, y = xy
    value = procrustes(x, y)
    assert 0 < value < 1
    assert procrustes(x, x) == pytest.approx(1.0)
    turned = x @ ortho_group.rvs(12, random_state=1) * 3.5 + 2.0  # rotated, scaled, shifted
    assert procrustes(turned, y) == pytest.approx(value, rel=1e-10)
    assert procrustes(x, y * 0.01) == pytest.approx(value, rel=1e-10)
    assert np.isnan(procrustes(np.ones((5, 3)), np.random.default_rng(0).standard_normal((5, 3))))


def test_rsa_is_spearman_of_the_rdms(xy):
    x, y = xy
    reference = spearmanr(pdist(x, "correlation"), pdist(y, "correlation")).statistic
    assert rsa(x, y) == pytest.approx(reference, rel=1e-10)
    assert rsa(x, x) == pytest.approx(1.0)
    assert rsa(x * 2 + 1, y) == pytest.approx(rsa(x, y), rel=1e-10)  # correlation distances ignore scale


def test_average_ranks_are_scipys():
    from scipy.stats import rankdata

    from repdrift.metrics._arrays import average_ranks

    values = np.array([0.3, 0.1, 0.3, 0.7, 0.1, 0.1, 0.9])
    np.testing.assert_array_equal(average_ranks(values), rankdata(values))
    noise = np.random.default_rng(8).standard_normal(1000).round(1)  # many ties
    np.testing.assert_array_equal(average_ranks(noise), rankdata(noise))
    rows = np.random.default_rng(9).integers(0, 4, size=(50, 7)).astype(float)  # rows of ties, ranked row by row
    np.testing.assert_array_equal(average_ranks(rows), rankdata(rows, axis=1))
    np.testing.assert_array_equal(average_ranks(np.full((2, 3), 5.0)), np.full((2, 3), 2.0))
    assert average_ranks(np.array([4.0])).tolist() == [1.0]


def test_mutual_knn_by_hand():
    def at(*degrees):
        angles = np.radians(degrees)
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)

    x, y = at(0, 10, 80, 90), at(0, 80, 10, 90)
    # k = 1: X pairs 0-1 and 2-3, Y pairs 0-2 and 1-3: nothing in common.
    assert mutual_knn(x, y, k=1) == 0.0
    # k = 2: X {1,2} {0,2} {3,1} {2,1}; Y {2,1} {3,2} {0,1} {1,2}; shared 2 + 1 + 1 + 2 of 8.
    assert mutual_knn(x, y, k=2) == 0.75
    assert mutual_knn(x, x, k=2) == 1.0
    assert mutual_knn(x, y, k=3) == 1.0  # k = n - 1: every other sample is a neighbour


def test_mutual_knn_is_one_for_any_rotation(xy):
    x, _ = xy
    assert mutual_knn(x, x @ ortho_group.rvs(12, random_state=3), k=10) == 1.0
    noise = np.random.default_rng(4).standard_normal(x.shape)
    assert mutual_knn(x, noise, k=10) < 0.4


def test_svcca_and_pwcca_basic_properties(xy):
    x, y = xy
    assert svcca(x, x) == pytest.approx(1.0) and pwcca(x, x) == pytest.approx(1.0)
    assert 0 < pwcca(x, y) < 1 and 0 < svcca(x, y) < 1
    # Invariant to invertible linear maps of either side (CCA), up to the variance threshold.
    mixed = x @ np.random.default_rng(5).standard_normal((12, 12))
    assert svcca(mixed, y, threshold=1.0) == pytest.approx(svcca(x, y, threshold=1.0), rel=1e-8)
    # Few samples for many directions: each side keeps (n - 1) // 2 = 9, so unrelated data is not a perfect match.
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((20, 15)), rng.standard_normal((20, 15))
    assert 0 < pwcca(a, b) < 0.9 and 0 < svcca(a, b) < 0.9
    assert pwcca(a, a) == pytest.approx(1.0)


def reference_inputs():
    rng = np.random.default_rng(2026)
    x = rng.standard_normal((300, 20))
    y = np.tanh(x[:, :12] @ rng.standard_normal((12, 15))) + 0.3 * rng.standard_normal((300, 15))
    return x, y, rng.standard_normal((300, 10))


def test_svcca_and_pwcca_against_the_published_implementation():
    # google/svcca (cca_core.get_cca_similarity, pwcca.compute_pwcca) run on these inputs, (neurons, samples) layout:
    # SVCCA as its tutorial does it (SVD to 99 % of the variance keeps every direction here, then the mean of
    # cca_coef1); PWCCA with its pipeline's directions whitened (the canonical variates of Morcos et al.), which
    # is this code's definition (its compute_pwcca as published gives 0.7398059042: see repdrift.metrics.similarity).
    x, y, z = reference_inputs()
    assert svcca(x, y) == pytest.approx(0.6411734593, abs=1e-9)
    assert svcca(x, z) == pytest.approx(0.2304825949, abs=1e-9)
    assert pwcca(x, y) == pytest.approx(0.7346507726, abs=1e-9)
    assert pwcca(x, y) == pwcca(y, x)  # weighted by the side with fewer directions, either way round


@pytest.mark.parametrize(
    "call, argument",
    [
        (lambda: procrustes(np.full((4, 2), np.nan), np.ones((4, 2))), "x: expected finite values"),
        # procrustes checks finiteness through the column means: one inf, and +inf beside -inf (a NaN mean)
        (lambda: procrustes(np.eye(4), np.where(np.eye(4) > 0, np.inf, 0.0)), "y: expected finite values"),
        (lambda: procrustes(np.array([[np.inf], [-np.inf], [0.0]]), np.ones((3, 1))), "x: expected finite values"),
        (lambda: procrustes(np.ones((1, 2)), np.ones((1, 2))), "x: expected at least 2 samples"),
        (lambda: rsa(np.ones((5, 2)), np.ones((4, 2))), "same samples"),
        (lambda: mutual_knn(np.eye(4), np.eye(4), k=4), "k: expected an integer in 1..n - 1 = 3"),
        (lambda: pwcca(np.eye(4), np.eye(4), threshold=0), "threshold"),
        (lambda: mutual_knn(np.eye(4), np.eye(4), k=True), "k: expected an integer"),
        (lambda: pwcca(np.ones((4, 2)), np.full((4, 2), np.inf)), "y: expected finite values"),
        (lambda: svcca(np.ones((2, 2)), np.ones((2, 2))), "x: expected at least 3 samples"),
        (lambda: mutual_knn(np.ones((3, 2)), np.ones((4, 2))), "same samples"),
    ],
)
def test_bad_input_names_the_argument(call, argument):
    with pytest.raises(ValueError, match=argument):
        call()


def test_degenerate_input_is_nan_not_an_error():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 3))
    constant_sample = x.copy()
    constant_sample[2] = 5.0  # the same value in every feature: no correlation with other samples
    assert np.isnan(rsa(constant_sample, x))
    zero_sample = x.copy()
    zero_sample[0] = 0.0  # no cosine similarity
    assert np.isnan(mutual_knn(zero_sample, x, k=2))
    assert np.isnan(procrustes(np.ones((6, 3)), x)) and np.isnan(pwcca(np.ones((6, 3)), x))
