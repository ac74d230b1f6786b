"""Centered kernel alignment (CKA) of two representations of the same n samples.

Kornblith, Norouzi, Lee and Hinton, "Similarity of Neural Network Representations Revisited", ICML 2019:
CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)). Conventions follow their reference code
(github.com/google-research/google-research, representation_similarity/demo.ipynb): biased HSIC with the
centring matrix H, or with ``debiased=True`` the U-centred HSIC of Szekely and Rizzo (2014) / Song et al.
(2012), which needs n >= 4. CKA is nan when a representation has zero variance (constant features), where
it is 0/0. NaN/inf input and mismatched n raise ValueError.
"""

from __future__ import annotations

import numpy as np

from ._arrays import float_array
from .layerwise import CenteredLayers, _center_into, _check_debiased_n, _ratio, hsic_terms


def linear_cka(x, y, debiased: bool = False) -> float:
    """Linear CKA of x (n, d1) and y (n, d2) in feature space, O(n d^2).

    ``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` for column-centred X, Y (Kornblith et al. 2019, Sec. 3;
    equals the Gram-route CKA with linear kernels). Centring and all sums in float64; products in the
    input precision (float32 inputs: relative error ~1e-10; see :mod:`repdrift.metrics.layerwise`).
    """
    x, y = _pair(x, y)
    cross, hx, hy = hsic_terms(CenteredLayers([x], "x"), [y], pairwise=False, debiased=debiased)
    return float(_ratio(cross, np.sqrt(hx * hy))[0])


def rbf_cka(x, y, threshold: float = 1.0, debiased: bool = False) -> float:
    """CKA with RBF kernels, O(n^2 d) time and O(n^2) memory, in float64.

    Kernel ``k(a, b) = exp(-||a - b||^2 / (2 sigma^2))`` with ``sigma^2 = threshold^2 * median`` of all n^2
    squared pairwise distances, zero diagonal included: ``gram_rbf`` of Kornblith et al.'s reference code
    (so sigma is `threshold` times the median distance up to how the median of an even count is taken).
    Distances are computed from column-centred data and clipped at 0. When that median is 0 (constant
    features, or more than half of all pairs coincide) the bandwidth is 0 and the result is nan.
    """
    if not (np.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold: expected a positive finite bandwidth multiplier, got {threshold!r}")
    x, y = _pair(x, y)
    if debiased:
        _check_debiased_n(x.shape[0])
    kx = _rbf_gram(_center_into(x, np.empty(x.shape)), threshold)
    ky = _rbf_gram(_center_into(y, np.empty(y.shape)), threshold)
    if kx is None or ky is None:
        return float("nan")
    return _gram_cka(kx, ky, debiased)


def gram_cka(gram_x, gram_y, debiased: bool = False) -> float:
    """CKA of two symmetric (n, n) kernel matrices, O(n^2): the reference code's ``cka(gram_x, gram_y)``."""
    grams = []
    for name, g in (("gram_x", gram_x), ("gram_y", gram_y)):
        g = float_array(g, name, 2).astype(np.float64)  # a copy: centring works in place
        if g.shape[0] != g.shape[1]:
            raise ValueError(f"{name}: expected a symmetric (n, n) kernel matrix, got shape {g.shape}")
        if not np.allclose(g, g.T):
            raise ValueError(f"{name}: expected a symmetric kernel matrix, got an asymmetric one")
        grams.append(g)
    if grams[0].shape != grams[1].shape:
        raise ValueError(f"gram_x and gram_y must be over the same samples: got {grams[0].shape} and {grams[1].shape}")
    if debiased:
        _check_debiased_n(grams[0].shape[0])
    return _gram_cka(grams[0], grams[1], debiased)


def _gram_cka(kx: np.ndarray, ky: np.ndarray, debiased: bool) -> float:
    kx = _center_gram(kx, debiased)
    ky = _center_gram(ky, debiased)
    return float(_ratio(np.vdot(kx, ky), np.sqrt(np.vdot(kx, kx) * np.vdot(ky, ky))))


def _center_gram(gram: np.ndarray, unbiased: bool) -> np.ndarray:
    """H K H (biased) or the U-centred K (unbiased), in place; the reference code's ``center_gram``."""
    n = gram.shape[0]
    if unbiased:
        # Szekely & Rizzo (2014) form of the U-statistic, the one the reference code uses.
        np.fill_diagonal(gram, 0)
        means = gram.sum(0) / (n - 2)
        means -= means.sum() / (2 * (n - 1))
    else:
        means = gram.mean(0)
        means -= means.mean() / 2
    gram -= means[:, None]
    gram -= means[None, :]
    if unbiased:
        np.fill_diagonal(gram, 0)
    return gram


def _rbf_gram(x: np.ndarray, threshold: float) -> np.ndarray | None:
    """RBF Gram matrix of centred x, or None when the median squared distance is 0."""
    gram = x @ x.T
    sq = np.diag(gram).copy()
    gram *= -2
    gram += sq[:, None]
    gram += sq[None, :]
    np.maximum(gram, 0, out=gram)  # rounding can make near-duplicate pairs slightly negative
    np.fill_diagonal(gram, 0)
    median = np.median(gram)
    if median <= 0:
        return None
    gram *= -1.0 / (2 * threshold**2 * median)
    return np.exp(gram, out=gram)


def _pair(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = float_array(x, "x", 2)
    y = float_array(y, "y", 2)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must hold the same samples (rows): got n = {x.shape[0]} and n = {y.shape[0]}")
    return x, y
