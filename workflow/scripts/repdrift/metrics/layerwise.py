"""Linear CKA between many layers at once, in feature space.

For column-centred X (n, d1) and Y (n, d2), the biased HSIC of the linear kernels is, up to a factor
(n-1)^-2 that cancels in CKA, ``||Y^T X||_F^2 = <X X^T, Y Y^T>_F`` (Kornblith et al. 2019, Eq. 1 and
Sec. 3), so CKA costs O(n d^2) instead of the O(n^2 d) of the Gram route. The debiased estimator replaces
every HSIC by the U-statistic of Song et al. (2012), in the feature-space form of Kornblith et al.'s
reference code (``feature_space_linear_cka(..., debiased=True)`` in google-research/representation_similarity):

    hsic_u(X, Y) = ||Y^T X||^2 - n/(n-2) * <s_X, s_Y> + ||X||^2 ||Y||^2 / ((n-1)(n-2)),

with s_X the squared row norms of X; the missing 1/(n(n-3)) cancels as well.

Precision: columns are centred in float64 after shifting by the first row, so a constant column becomes
exactly zero and large offsets cost no accuracy. The products then run in the input's precision (float32
for float32/float16 features, float64 for float64), and every reduction of them is accumulated in float64.
For float32 features the relative error of ||Y^T X||^2 is ~1e-10 (measured, n = 10,000, d = 768); blocking
the float32 products over rows into a float64 accumulator measured no more accurate and ~8% slower, so it
is not done. Pass float64 arrays to agree with the float64 reference to ~1e-13.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np

from ._arrays import float_array, to_numpy

_BLOCK_ROWS = 1024  # rows centred per step: keeps the float64 temporary small (~6 MB at d = 768)


class CenteredLayers:
    """Column-centred features of L layers (same n) plus their CKA self-terms, computed once.

    Build one for the pre-trained model and pass it to :func:`layerwise_cka` for every fine-tuned model:
    the centring and the ||X^T X||_F^2 self-terms are then not recomputed.

    Attributes: ``n`` samples, ``dims`` feature width per layer, ``dtype`` of the products, ``layers``
    (list of centred (n, d_l) views), ``gram_sq`` (L,) = ||X_l^T X_l||_F^2 in float64.
    """

    def __init__(self, xs, name: str = "xs"):
        layers = _layer_list(xs, name)
        n = layers[0].shape[0]
        for i, a in enumerate(layers):
            if a.shape[0] != n:
                counts = f"layer 0 has {n}, layer {i} has {a.shape[0]}"
                raise ValueError(f"{name}: every layer needs the same number of samples; {counts}")
            if a.shape[1] == 0:
                raise ValueError(f"{name}: layer {i} has no features (shape {a.shape})")
        if n == 0:
            raise ValueError(f"{name}: expected at least one sample, got n = 0")
        self.n = n
        self.dims = tuple(a.shape[1] for a in layers)
        self.dtype = np.dtype(np.float64 if any(a.dtype == np.float64 for a in layers) else np.float32)
        self.offsets = np.concatenate([[0], np.cumsum(self.dims)]).astype(np.intp)
        # One (n, sum d) array so that a layer's product with all layers of the other model is one GEMM.
        self.wide = np.empty((n, int(self.offsets[-1])), self.dtype)
        for a, lo, hi in zip(layers, self.offsets[:-1], self.offsets[1:]):
            _center_into(a, self.wide[:, lo:hi])
        self.layers = [self.wide[:, lo:hi] for lo, hi in zip(self.offsets[:-1], self.offsets[1:])]
        # X^T X of a view with itself is a SYRK in numpy (half the flops of a GEMM).
        self.gram_sq = np.array([_sq_sum(v.T @ v) for v in self.layers])

    def __len__(self) -> int:
        return len(self.layers)

    @cached_property
    def row_sq(self) -> np.ndarray:
        """(L, n) squared row norms in float64 (only the debiased estimator needs them)."""
        return np.stack([np.einsum("ij,ij->i", v, v, dtype=np.float64) for v in self.layers])

    def self_hsic(self, debiased: bool) -> np.ndarray:
        """(L,) HSIC(X_l, X_l), unnormalised (biased: ||X^T X||^2; debiased: the U-statistic form)."""
        if not debiased:
            return self.gram_sq
        _check_debiased_n(self.n)
        r = self.row_sq
        return _debias(self.gram_sq, np.einsum("ln,ln->l", r, r), r.sum(1) ** 2, self.n)


def center_layers(xs) -> CenteredLayers:
    """Centre L layers once for reuse with :func:`layerwise_cka` (xs: (L, n, d) array or list of (n, d_l))."""
    return xs if isinstance(xs, CenteredLayers) else CenteredLayers(xs)


def layerwise_cka(xs, ys, *, pairwise: bool = True, debiased: bool = False) -> np.ndarray:
    """Linear CKA between every layer of `xs` and every layer of `ys`, in batched form.

    xs, ys: arrays (L, n, d) (numpy or torch), sequences of (n, d_l) arrays, or :class:`CenteredLayers`
    (reuse the pre-trained model's centring and self-terms across fine-tuned models).
    pairwise=True returns the (L1, L2) matrix ``out[i, j] = CKA(xs[i], ys[j])``; pairwise=False returns the
    diagonal (L,) ``CKA(xs[l], ys[l])`` and needs L1 == L2. debiased=True uses the U-statistic HSIC of
    Kornblith et al.'s reference code and needs n >= 4. Convention and precision: see the module docstring.
    Entries where a layer has zero variance (constant features) are nan: CKA is 0/0 there.
    """
    cx, cy = center_layers(xs), center_layers(ys)
    cross, hx, hy = hsic_terms(cx, cy, pairwise=pairwise, debiased=debiased)
    denom = np.sqrt(np.outer(hx, hy)) if pairwise else np.sqrt(hx * hy)
    return _ratio(cross, denom)


def hsic_terms(cx: CenteredLayers, cy: CenteredLayers, *, pairwise: bool, debiased: bool):
    """Unnormalised HSIC(X_i, Y_j) (pairwise (L1, L2) or diagonal (L,)) and the self-terms of each side."""
    if cx.n != cy.n:
        raise ValueError(f"xs and ys must hold the same samples: got n = {cx.n} and n = {cy.n}")
    if not pairwise and len(cx) != len(cy):
        raise ValueError(
            "pairwise=False compares layer l with layer l and needs as many layers on both sides; "
            f"got {len(cx)} and {len(cy)}"
        )
    dtype = np.result_type(cx.dtype, cy.dtype)
    xl = [v.astype(dtype, copy=False) for v in cx.layers]
    if pairwise:
        wide = cy.wide.astype(dtype, copy=False)
        cross = np.empty((len(cx), len(cy)))
        for i, v in enumerate(xl):
            prod = v.T @ wide  # (d_i, sum d_j): X_i^T Y_j for every j in one GEMM
            cross[i] = np.add.reduceat(np.einsum("ij,ij->j", prod, prod, dtype=np.float64), cy.offsets[:-1])
    else:
        cross = np.array([_sq_sum(v.T @ w.astype(dtype, copy=False)) for v, w in zip(xl, cy.layers)])
    hx, hy = cx.self_hsic(debiased), cy.self_hsic(debiased)
    if debiased:
        rx, ry = cx.row_sq, cy.row_sq
        sx, sy = rx.sum(1), ry.sum(1)
        if pairwise:
            cross = _debias(cross, rx @ ry.T, np.outer(sx, sy), cx.n)
        else:
            cross = _debias(cross, np.einsum("ln,ln->l", rx, ry), sx * sy, cx.n)
    return cross, hx, hy


def _debias(sq_cross, row_dot, norm_prod, n: int):
    """Kornblith et al.'s `_debiased_dot_product_similarity_helper`: biased -> U-statistic HSIC."""
    return sq_cross - n / (n - 2.0) * row_dot + norm_prod / ((n - 1.0) * (n - 2.0))


def _check_debiased_n(n: int) -> None:
    if n <= 3:
        raise ValueError(f"debiased=True needs n >= 4 samples (the U-statistic HSIC divides by n(n-3)); got n = {n}")


def _ratio(num, denom):
    """num / denom with nan where a self-term is not positive (zero-variance features: CKA is 0/0)."""
    num, denom = np.asarray(num, np.float64), np.asarray(denom, np.float64)
    ok = denom > 0
    return np.where(ok, num / np.where(ok, denom, 1.0), np.nan)


def _sq_sum(a: np.ndarray) -> float:
    """Sum of squares accumulated in float64 whatever a's dtype."""
    return float(np.einsum("ij,ij->", a, a, dtype=np.float64))


def _center_into(a: np.ndarray, out: np.ndarray) -> None:
    """out = a - mean(a, 0), computed in float64 about the first row (constant columns become exactly 0)."""
    first = a[0].astype(np.float64)
    total = np.zeros(a.shape[1])
    for lo in range(0, a.shape[0], _BLOCK_ROWS):
        total += np.subtract(a[lo : lo + _BLOCK_ROWS], first, dtype=np.float64).sum(0)
    offset = total / a.shape[0]
    for lo in range(0, a.shape[0], _BLOCK_ROWS):
        block = np.subtract(a[lo : lo + _BLOCK_ROWS], first, dtype=np.float64)
        block -= offset
        out[lo : lo + _BLOCK_ROWS] = block


def _layer_list(xs, name: str) -> list[np.ndarray]:
    """(L, n, d) array or a sequence of (n, d_l) arrays -> list of 2-d floating arrays."""
    if isinstance(xs, Sequence) and not isinstance(xs, np.ndarray):
        if len(xs) == 0:
            raise ValueError(f"{name}: expected at least one layer, got an empty sequence")
        return [float_array(a, f"{name}[{i}]", 2) for i, a in enumerate(xs)]
    arr = to_numpy(xs, name)
    if arr.ndim != 3:
        raise ValueError(f"{name}: expected layers shaped (L, n, d) or a list of (n, d) arrays, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one layer, got shape {arr.shape}")
    arr = float_array(arr, name, 3)
    return list(arr)
