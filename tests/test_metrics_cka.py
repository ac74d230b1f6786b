"""linear_cka, rbf_cka, gram_cka against a Gram-route CKA written from the paper, hand-worked cases and
CKA's properties (Kornblith et al. 2019)."""

import numpy as np
import pytest
from references import cka_ref, rbf_gram_ref

from repdrift.metrics import gram_cka, linear_cka, rbf_cka


@pytest.fixture
def xy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 12))
    y = np.tanh(x @ rng.standard_normal((12, 7))) + 0.5 * rng.standard_normal((60, 7))
    return x, y


# --- agreement with the references ---------------------------------------------------------------------
@pytest.mark.parametrize("debiased", [False, True])
def test_linear_cka_matches_gram_route_from_eq1(xy, debiased):
    x, y = xy
    assert linear_cka(x, y, debiased=debiased) == pytest.approx(cka_ref(x @ x.T, y @ y.T, debiased), rel=1e-12)


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("threshold", [0.5, 1.0, 2.0])
def test_rbf_cka_matches_reference(xy, threshold, debiased):
    x, y = xy
    expected = cka_ref(rbf_gram_ref(x, threshold), rbf_gram_ref(y, threshold), debiased)
    assert rbf_cka(x, y, threshold=threshold, debiased=debiased) == pytest.approx(expected, rel=1e-10)


def test_rbf_median_is_over_all_n2_distances():
    # With the zero diagonal in the median the bandwidth is smaller than with off-diagonal pairs only.
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((9, 3)), rng.standard_normal((9, 3))

    def gram_offdiag_median(a):
        d2 = ((a[:, None] - a[None]) ** 2).sum(-1)
        return np.exp(-d2 / (2 * np.median(d2[~np.eye(len(a), dtype=bool)])))

    ours = rbf_cka(x, y)
    assert ours == pytest.approx(cka_ref(rbf_gram_ref(x, 1.0), rbf_gram_ref(y, 1.0)), rel=1e-12)
    assert abs(ours - cka_ref(gram_offdiag_median(x), gram_offdiag_median(y))) > 1e-4


@pytest.mark.parametrize("debiased", [False, True])
def test_gram_cka_matches_reference_and_feature_route(xy, debiased):
    x, y = xy
    assert gram_cka(x @ x.T, y @ y.T, debiased) == pytest.approx(cka_ref(x @ x.T, y @ y.T, debiased), rel=1e-12)
    assert gram_cka(x @ x.T, y @ y.T, debiased) == pytest.approx(linear_cka(x, y, debiased), rel=1e-12)


def test_hand_worked_one_dimensional_case_is_squared_correlation():
    # Centred x = (-1.5, -.5, .5, 1.5), y = (-1.5, .5, -.5, 1.5): (sum xy)^2 / (sum x^2 sum y^2) = 16 / 25.
    x = np.array([[1.0], [2.0], [3.0], [4.0]])
    y = np.array([[1.0], [3.0], [2.0], [4.0]])
    assert linear_cka(x, y) == pytest.approx(0.64, rel=1e-15)


def test_hand_worked_rbf_two_points():
    # n = 2: median of {0, 0, d, d} is d / 2, so K = [[1, e^-1], [e^-1, 1]] and both centred Grams are
    # proportional to [[1, -1], [-1, 1]]: CKA = 1 for any two non-degenerate 2-point representations.
    assert rbf_cka([[0.0, 0.0], [3.0, 4.0]], [[1.0], [-7.0]]) == pytest.approx(1.0, rel=1e-15)


# --- properties ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [linear_cka, rbf_cka])
@pytest.mark.parametrize("debiased", [False, True])
def test_self_similarity_is_one_and_symmetric(xy, fn, debiased):
    x, y = xy
    assert fn(x, x, debiased=debiased) == pytest.approx(1.0, abs=1e-12)
    assert fn(x, y, debiased=debiased) == pytest.approx(fn(y, x, debiased=debiased), rel=1e-12)


@pytest.mark.parametrize("debiased", [False, True])
def test_invariant_to_orthogonal_transform_isotropic_scaling_and_offset(xy, debiased):
    x, y = xy
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.standard_normal((12, 12)))
    base = linear_cka(x, y, debiased)
    assert linear_cka(x @ q * 7.5 + 3.0, y, debiased) == pytest.approx(base, rel=1e-12)
    assert rbf_cka(x @ q * 7.5 + 3.0, y, debiased=debiased) == pytest.approx(
        rbf_cka(x, y, debiased=debiased), rel=1e-10
    )
    # ... but not to anisotropic scaling (so the checks above are not vacuous).
    assert abs(linear_cka(x * np.linspace(0.1, 10, 12), y, debiased) - base) > 1e-3


def test_debiased_near_zero_for_independent_data():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((1000, 100)), rng.standard_normal((1000, 100))
    biased, debiased = linear_cka(x, y), linear_cka(x, y, debiased=True)
    assert abs(debiased) < 0.005
    assert biased > 0.05  # the bias that debiasing removes grows with d / n


def test_float32_features_agree_with_float64_despite_large_offset():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3000, 64)) + 1e3
    y = x @ rng.standard_normal((64, 32)) + rng.standard_normal((3000, 32))
    for debiased in (False, True):
        exact = linear_cka(x, y, debiased)
        approx = linear_cka(x.astype(np.float32), y.astype(np.float32), debiased)
        assert approx == pytest.approx(exact, rel=1e-6)


# --- edge cases ----------------------------------------------------------------------------------------
def test_constant_features_give_nan():
    rng = np.random.default_rng(5)
    y = rng.standard_normal((20, 3))
    for dtype in (np.float64, np.float32, np.float16):
        const = np.full((20, 4), 0.1, dtype)  # 0.1 is not exactly representable: the mean must still centre it to 0
        for debiased in (False, True):
            assert np.isnan(linear_cka(const, y, debiased))
            assert np.isnan(rbf_cka(const, y, debiased=debiased))
    assert np.isnan(gram_cka(np.ones((5, 5)), np.eye(5)))


def test_one_constant_column_is_harmless(xy):
    x, y = xy
    padded = np.hstack([x, np.full((x.shape[0], 1), 0.3)])
    assert linear_cka(padded, y) == pytest.approx(linear_cka(x, y), rel=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_debiased_needs_four_samples(n):
    x = np.arange(n * 2, dtype=float).reshape(n, 2) ** 2
    with pytest.raises(ValueError, match="n >= 4"):
        linear_cka(x, x, debiased=True)
    with pytest.raises(ValueError, match="n >= 4"):
        rbf_cka(x, x, debiased=True)
    assert linear_cka(np.arange(4.0)[:, None] ** 2, np.arange(4.0)[:, None], debiased=True) <= 1.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("fn", [linear_cka, rbf_cka])
def test_non_finite_input_raises(xy, bad, fn):
    x, y = xy
    x = x.copy()
    x[3, 2] = bad
    with pytest.raises(ValueError, match="x: expected finite values"):
        fn(x, y)
    with pytest.raises(ValueError, match="y: expected finite values"):
        fn(y, x)


@pytest.mark.parametrize("fn", [linear_cka, rbf_cka])
def test_mismatched_n_and_bad_shapes_raise(xy, fn):
    x, y = xy
    with pytest.raises(ValueError, match="same samples"):
        fn(x, y[:-1])
    with pytest.raises(ValueError, match="2-d"):
        fn(x[:, 0], y)
    with pytest.raises(ValueError, match="numeric"):
        fn(np.array([["a", "b"]] * 4), y[:4])


def test_bad_threshold_and_gram_shapes_raise():
    x = np.random.default_rng(6).standard_normal((10, 3))
    with pytest.raises(ValueError, match="threshold"):
        rbf_cka(x, x, threshold=0)
    with pytest.raises(ValueError, match="symmetric"):
        gram_cka(np.arange(16.0).reshape(4, 4), np.eye(4))
    with pytest.raises(ValueError, match="same samples"):
        gram_cka(np.eye(4), np.eye(5))
