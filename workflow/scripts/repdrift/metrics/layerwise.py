"""Linear CKA between many layers at once, in feature space.

For column-centred X (n, d1) and Y (n, d2), the biased HSIC of the linear kernels is, up to a factor
(n-1)^-2 that cancels in CKA, ``||Y^T X||_F^2 = <X X^T, Y Y^T>_F`` (Kornblith et al. 2019, Eq. 1 and
Sec. 3), so CKA costs O(n d^2) instead of the O(n^2 d) of the Gram route. The debiased estimator replaces
every HSIC by the U-statistic of Song et al. (2012), in the feature-space form of Kornblith et al.'s
reference code (``feature_space_linear_cka(..., debiased=True)`` in google-research/representation_similarity):

    hsic_u(X, Y) = ||Y^T X||^2 - n/(n-2) * <s_X, s_Y> + ||X||^2 ||Y||^2 / ((n-1)(n-2)),

with s_X the squared row norms of X; the missing 1/(n(n-3)) cancels as well.

Precision: the column means are taken and subtracted in float64 (a constant column becomes exactly zero,
and large offsets cost no accuracy). The products then run in the input's precision (float32
for float32/float16 features, float64 for float64), and every reduction of them is accumulated in float64.
For float32 features the relative error of ||Y^T X||^2 is ~1e-10 (measured, n = 10,000, d = 768); blocking
the float32 products over rows into a float64 accumulator measured no more accurate and ~8% slower, so it
is not done. Pass float64 arrays to agree with the float64 reference to ~1e-12.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np

from ._arrays import float_array, to_numpy

_BLOCK_ROWS = 1024  # rows per step of the float64 mean: keeps the temporary small (~6 MB at d = 768)


class CenteredLayers:
    """Column-centred features of L layers (same n) plus their CKA self-terms, computed once.

    Build one for the pre-trained model and pass it to :func:`layerwise_cka` for every fine-tuned model:
    the centring and the ||X^T X||_F^2 self-terms are then not recomputed.

    Attributes: ``n`` samples, ``dims`` feature width per layer, ``dtype`` of the products, ``layers``
    (list of centred (n, d_l) views), ``gram_sq`` (L,) = ||X_l^T X_l||_F^2 in float64.
    """

    def __init__(self, xs, name: str = "xs"):
        layers = _layer_list(xs, name)
        self.n = n = layers[0].shape[0]
        self.dims = tuple(a.shape[1] for a in layers)
        self.dtype = _product_dtype(layers)
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
        return _self_hsic(self.gram_sq, self.row_sq if debiased else None, self.n)


def center_layers(xs) -> CenteredLayers:
    """Centre L layers once for reuse with :func:`layerwise_cka` (xs: (L, n, d) array or list of (n, d_l))."""
    return xs if isinstance(xs, CenteredLayers) else CenteredLayers(xs)


def layerwise_cka(xs, ys, *, pairwise: bool = True, debiased: bool = False) -> np.ndarray:
    """Linear CKA between every layer of `xs` and every layer of `ys`, in batched form.

    xs, ys: arrays (L, n, d) (numpy or torch), sequences of (n, d_l) arrays, or :class:`CenteredLayers`
    (reuse the pre-trained model's centring and self-terms across fine-tuned models: pass it as `xs`).
    pairwise=True returns the (L1, L2) matrix ``out[i, j] = CKA(xs[i], ys[j])``; pairwise=False returns the
    diagonal (L,) ``CKA(xs[l], ys[l])`` and needs L1 == L2. debiased=True uses the U-statistic HSIC of
    Kornblith et al.'s reference code and needs n >= 4. Convention and precision: see the module docstring.
    Entries where a layer has zero variance (constant features) are nan: CKA is 0/0 there.
    """
    cross, hx, hy = hsic_terms(center_layers(xs), ys, pairwise=pairwise, debiased=debiased)
    denom = np.sqrt(np.outer(hx, hy)) if pairwise else np.sqrt(hx * hy)
    return _ratio(cross, denom)


def hsic_terms(cx: CenteredLayers, ys, *, pairwise: bool, debiased: bool):
    """Unnormalised HSIC(X_i, Y_j) (pairwise (L1, L2) or diagonal (L,)) and the self-terms of each side.

    `ys` is a CenteredLayers or raw layers; raw layers are centred one at a time into a reused buffer, so
    only the X side is ever held centred in full. Every X_i^T Y_j for one j is a single GEMM.
    """
    if isinstance(ys, CenteredLayers):
        y_layers, n_y, dtype = ys.layers, ys.n, np.result_type(cx.dtype, ys.dtype)
    else:
        y_layers = _layer_list(ys, "ys")
        n_y, dtype = y_layers[0].shape[0], np.result_type(cx.dtype, _product_dtype(y_layers))
    if cx.n != n_y:
        raise ValueError(f"xs and ys must hold the same samples: got n = {cx.n} and n = {n_y}")
    if not pairwise and len(cx) != len(y_layers):
        raise ValueError(
            "pairwise=False compares layer l with layer l and needs as many layers on both sides; "
            f"got {len(cx)} and {len(y_layers)}"
        )
    if debiased:
        _check_debiased_n(cx.n)
    x_wide = cx.wide.astype(dtype, copy=False)
    dims = [y.shape[1] for y in y_layers]
    # Reused buffers: a fresh 30 MB array per layer costs more in page faults than its centring.
    y_buf = None if isinstance(ys, CenteredLayers) else np.empty(cx.n * max(dims), dtype)
    prod_buf = np.empty(x_wide.shape[1] * max(dims), dtype) if pairwise else None
    cross = np.empty((len(cx), len(y_layers)) if pairwise else len(y_layers))
    gram_sq = np.empty(len(y_layers))
    row_sq = np.empty((len(y_layers), cx.n)) if debiased else None
    for j, y in enumerate(y_layers):
        if y_buf is not None:
            y = _center_into(y, y_buf[: y.size].reshape(y.shape))
        y = y.astype(dtype, copy=False)
        gram_sq[j] = ys.gram_sq[j] if isinstance(ys, CenteredLayers) else _sq_sum(y.T @ y)
        if debiased:
            row_sq[j] = np.einsum("ij,ij->i", y, y, dtype=np.float64)
        if pairwise:
            prod = np.matmul(x_wide.T, y, out=prod_buf[: x_wide.shape[1] * y.shape[1]].reshape(-1, y.shape[1]))
            cross[:, j] = np.add.reduceat(np.einsum("ij,ij->i", prod, prod, dtype=np.float64), cx.offsets[:-1])
        else:
            cross[j] = _sq_sum(cx.layers[j].astype(dtype, copy=False).T @ y)
    hx, hy = cx.self_hsic(debiased), _self_hsic(gram_sq, row_sq, cx.n)
    if debiased:
        rx, sx, sy = cx.row_sq, cx.row_sq.sum(1), row_sq.sum(1)
        if pairwise:
            cross = _debias(cross, rx @ row_sq.T, np.outer(sx, sy), cx.n)
        else:
            cross = _debias(cross, np.einsum("ln,ln->l", rx, row_sq), sx * sy, cx.n)
    return cross, hx, hy


def _self_hsic(gram_sq: np.ndarray, row_sq: np.ndarray | None, n: int) -> np.ndarray:
    """HSIC(X, X) per layer: ||X^T X||^2 (biased, row_sq None) or its U-statistic form."""
    if row_sq is None:
        return gram_sq
    _check_debiased_n(n)
    return _debias(gram_sq, np.einsum("ln,ln->l", row_sq, row_sq), row_sq.sum(1) ** 2, n)


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


def _center_into(a: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out = a - mean(a, 0), subtracted in float64; a constant column becomes exactly 0. Returns out."""
    n = a.shape[0]
    if a.dtype == np.float32:
        # float64 sums of float32 values are exact for a constant column (24 + log2(n) bits < 53), so its
        # mean is exactly its value.
        mean = a.sum(0, dtype=np.float64) / n
    else:
        # Shift by the first row: a constant column then sums to exactly 0 (0.1 * 3 / 3 != 0.1 in float64).
        mean = a[0].astype(np.float64)
        offset = np.zeros(a.shape[1])
        for lo in range(0, n, _BLOCK_ROWS):
            offset += np.subtract(a[lo : lo + _BLOCK_ROWS], mean).sum(0)
        mean += offset / n
    np.subtract(a, mean, out=out, casting="same_kind")  # one buffered float64 pass, cast to out's dtype
    return out


def _product_dtype(layers: list[np.ndarray]) -> np.dtype:
    """float64 if any layer is float64, else float32 (float_array has already widened float16)."""
    return np.dtype(np.float64 if any(a.dtype == np.float64 for a in layers) else np.float32)


def _layer_list(xs, name: str) -> list[np.ndarray]:
    """(L, n, d) array or a sequence of (n, d_l) arrays -> list of finite 2-d floating arrays, same n."""
    if isinstance(xs, Sequence) and not isinstance(xs, np.ndarray):
        if len(xs) == 0:
            raise ValueError(f"{name}: expected at least one layer, got an empty sequence")
        layers = [float_array(a, f"{name}[{i}]", 2) for i, a in enumerate(xs)]
    else:
        arr = to_numpy(xs, name)
        if arr.ndim != 3:
            want = "layers shaped (L, n, d) or a list of (n, d) arrays"
            raise ValueError(f"{name}: expected {want}, got shape {arr.shape}")
        if arr.shape[0] == 0:
            raise ValueError(f"{name}: expected at least one layer, got shape {arr.shape}")
        layers = list(float_array(arr, name, 3))
    n = layers[0].shape[0]
    for i, a in enumerate(layers):
        if a.shape[0] != n:
            counts = f"layer 0 has {n}, layer {i} has {a.shape[0]}"
            raise ValueError(f"{name}: every layer needs the same number of samples; {counts}")
        if a.shape[1] == 0:
            raise ValueError(f"{name}: layer {i} has no features (shape {a.shape})")
    if n == 0:
        raise ValueError(f"{name}: expected at least one sample, got n = 0")
    return layers
