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


def test_procrustes_is_1_for_identical_float32_features_wider_than_the_samples():
    # D > n: with the product in float32 this gave 1.0000004, and 1.00002 on the demo's features.
    x = np.random.default_rng(13).standard_normal((40, 768)).astype(np.float32)
    assert procrustes(x, x) == pytest.approx(1.0, abs=1e-12)


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


def _platonic_mutual_knn(a, b, k, q=0.95):
    """Huh et al.'s published steps (platonic-rep: prepare_features with remove_outliers, exact=False, then
    F.normalize; compute_nearest_neighbors; mutual_knn), in torch."""
    import torch
    import torch.nn.functional as F

    def prepare(feats):
        feats = torch.from_numpy(feats).double()
        if q < 1:
            limit = torch.quantile(feats.abs().flatten(start_dim=1), q, dim=1).mean()
            feats = feats.clamp(-limit, limit)
        return F.normalize(feats, dim=-1)

    def neighbours(feats):
        similarity = feats @ feats.T
        similarity.fill_diagonal_(-float("inf"))
        return similarity.argsort(dim=1, descending=True)[:, :k]

    knn_a, knn_b = neighbours(prepare(a)), neighbours(prepare(b))
    n = knn_a.shape[0]
    rows = torch.arange(n).unsqueeze(1)
    mask_a, mask_b = torch.zeros(n, n, dtype=torch.float64), torch.zeros(n, n, dtype=torch.float64)
    mask_a[rows, knn_a] = 1.0
    mask_b[rows, knn_b] = 1.0
    return ((mask_a * mask_b).sum(dim=1) / k).mean().item()


def test_mutual_knn_clips_outlier_dimensions_as_the_published_code():
    rng = np.random.default_rng(12)
    shared = rng.standard_normal((80, 200))
    x = shared + 0.3 * rng.standard_normal((80, 200))
    y = shared @ ortho_group.rvs(200, random_state=4) + 0.3 * rng.standard_normal((80, 200))
    # Two of 200 dimensions of large, unrelated values on each side, the outlier dimensions CLIP and DINOv2 ViTs have.
    x[:, :2] = 40 * rng.standard_normal((80, 2))
    y[:, :2] = 40 * rng.standard_normal((80, 2))
    clipped, raw = mutual_knn(x, y, k=10), mutual_knn(x, y, k=10, clip=1.0)
    assert clipped == pytest.approx(_platonic_mutual_knn(x, y, 10), abs=1e-12)
    assert raw == pytest.approx(_platonic_mutual_knn(x, y, 10, q=1.0), abs=1e-12)
    assert clipped > raw + 0.1  # the outliers' noise decides the neighbours unless clipped
    with pytest.raises(ValueError, match="clip: expected a quantile"):
        mutual_knn(x, y, k=10, clip=0.0)


def test_mutual_knn_is_one_for_any_rotation(xy):
    x, _ = xy
    assert mutual_knn(x, x @ ortho_group.rvs(12, random_state=3), k=10, clip=1.0) == 1.0
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


def test_svcca_against_the_published_implementation():
    # google/svcca (cca_core.get_cca_similarity) run on these inputs, (neurons, samples) layout, as its tutorial
    # does it (SVD to 99 % of the variance keeps every direction here, then the mean of cca_coef1).
    x, y, z = reference_inputs()
    assert svcca(x, y) == pytest.approx(0.6411734593, abs=1e-9)
    assert svcca(x, z) == pytest.approx(0.2304825949, abs=1e-9)
    assert pwcca(x, y) == pwcca(y, x)  # weighted by the side with fewer directions, either way round


def _svd_reduced(a, threshold):
    """The SVCCA step as google/svcca's tutorial writes it: centred, then the leading singular directions that hold
    `threshold` of the variance, as (neurons = directions, samples)."""
    centred = a - a.mean(axis=0)
    _, s, vt = np.linalg.svd(centred.T, full_matrices=False)  # (neurons, samples) = U S V^T
    keep = int(np.searchsorted(np.cumsum(s**2) / np.sum(s**2), threshold) + 1)
    return s[:keep, None] * vt[:keep]


def _ding_pwcca(a, b):
    """Ding, Denain and Steinhardt's `cca_decomp` and `pwcca_dist` (github.com/js-d/sim_metric), as similarity:
    whitening by the eigendecomposition of A A^T, weights over the rows of A, the inputs given to CCA."""

    def inverse_sqrt(m):
        values, vectors = np.linalg.eigh(m @ m.T)
        inverse = np.array([1 / np.sqrt(v) if v > 0 else 0.0 for v in (values + np.abs(values)) / 2])
        return vectors @ np.diag(inverse) @ vectors.T

    u, rho, _ = np.linalg.svd(inverse_sqrt(a) @ (a @ b.T) @ inverse_sqrt(b))
    transformed_a = (u.T @ inverse_sqrt(a) @ a).T
    weights = np.abs(transformed_a.T @ a.T).sum(axis=1)
    weights = weights / weights.sum()
    dim = min(len(weights), len(rho))
    return float(weights[:dim] @ rho[:dim])


def _google_pwcca(a, b):
    """google/svcca's `compute_pwcca` on (neurons, samples) inputs (its side: the one with fewer neurons), with its
    CCA directions whitened by invsqrt_xx (the canonical variates; as published it leaves them unwhitened)."""
    cov = np.cov(a, b)
    na = a.shape[0]
    sxx, sxy, syy = cov[:na, :na], cov[:na, na:], cov[na:, na:]
    xmax, ymax = np.abs(sxx).max(), np.abs(syy).max()
    sxx, syy, sxy = sxx / xmax, syy / ymax, sxy / np.sqrt(xmax * ymax)

    def inverse_sqrt(m):
        values, vectors = np.linalg.eigh(np.linalg.pinv(m))
        return vectors @ np.diag(np.sqrt(values)) @ vectors.T

    u, s, _ = np.linalg.svd(inverse_sqrt(sxx) @ sxy @ inverse_sqrt(syy))
    means = a.mean(axis=1, keepdims=True)
    directions = u.T @ inverse_sqrt(sxx) @ (a - means) + means
    p, _ = np.linalg.qr(directions.T)
    weights = np.abs(p.T @ a.T).sum(axis=1)
    weights = weights / weights.sum()
    return float(np.sum(weights * np.abs(s)[: weights.size]))


def test_pwcca_weights_over_the_directions_given_to_cca_as_both_published_codes():
    x, y, _ = reference_inputs()
    y = y @ np.random.default_rng(11).standard_normal((15, 40))  # 40 neurons of rank 15: y keeps more directions
    # 90 % of the variance: directions are dropped on both sides (at paper scale they always are).
    rx, ry = _svd_reduced(x, 0.9), _svd_reduced(y, 0.9)
    assert ry.shape[0] < 15 < rx.shape[0] < 20  # y, with fewer kept directions, is the weighted side
    ours = pwcca(x, y, threshold=0.9)
    assert ours == pytest.approx(_ding_pwcca(ry, rx), abs=1e-9)
    assert ours == pytest.approx(_google_pwcca(ry, rx), abs=1e-9)
    # Weighting over the original neurons instead (this function before) gives another value.
    from repdrift.metrics.similarity import _cca, _centred, _reduce

    rho, variates = _cca(_reduce(y, 0.9), _reduce(x, 0.9))
    neuron_weights = np.abs(variates[:, : rho.size].T @ _centred(y)).sum(axis=1)
    assert abs(neuron_weights @ rho / neuron_weights.sum() - ours) > 0.01


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
