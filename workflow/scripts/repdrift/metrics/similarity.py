"""Representation-similarity measures beside CKA (numpy, torch-free): rows are samples, columns features; X and Y
must hold the same samples in the same order and may differ in width. Every measure is 1 for identical inputs.

- `procrustes`: orthogonal Procrustes similarity ||X^T Y||_* of column-centred, Frobenius-normalised X and Y, in
  [0, 1]; the Procrustes distance is 2 - 2 x this (Ding, Denain and Steinhardt 2021, "Grounding representation
  similarity with statistical testing"; Williams et al. 2021, "Generalized shape metrics on neural
  representations"). Invariant to rotations and isotropic scaling of either side.
- `svcca` / `pwcca`: each side is centred and reduced by SVD to the fewest directions that explain `threshold`
  (99 %) of its variance (SVCCA, Raghu et al. 2017); canonical correlations rho_i of the reduced sides follow.
  `svcca` is their mean; `pwcca` their mean weighted by how much of one side each canonical variate h_i accounts
  for, alpha_i = sum_j |<h_i, r_j>| over the directions r_j given to CCA (that side's SVD-reduced activations, not
  its original neurons), normalised to sum 1 (projection-weighted CCA, Morcos, Raghu and Bengio 2018), as the
  published code weights them: google/svcca `compute_pwcca` over the activations it is given, Ding et al.'s
  `pwcca_dist` the same. As in google/svcca, the side is the one with fewer kept directions (X on a tie). That
  code projects onto u^T (X - mean) + mean, directions not whitened by Sigma_xx^-1/2; here h_i are the canonical
  variates of the paper (Ding et al.'s `transformed_a`); tests/test_metrics_similarity.py checks both pipelines'
  weights, the google one with whitened directions, to 1e-9 with directions dropped. Published PWCCA numbers are of
  CCA on the neurons themselves (Morcos et al., Ding et al.), not after an SVD reduction: this variant's values do not
  compare with theirs. SVCCA agrees with google/svcca's `get_cca_similarity` to 1e-9. CCA needs more
  samples than directions: with k_x + k_y > n - 1, at least k_x + k_y - (n - 1) canonical correlations are 1
  whatever the data. Each side therefore keeps at most (n - 1) // 2 directions, its leading ones, even when 99 %
  of the variance needs more (ViT-B features on the paper's 512 images can): the measure is then SVCCA / PWCCA of
  the leading (n - 1) // 2 directions.
- `rsa`: Spearman correlation of the two representational dissimilarity matrices, RDM = 1 - Pearson correlation
  between samples, over the upper triangle (Kriegeskorte, Mur and Bandettini 2008).
- `mutual_knn`: mean over samples of |N_k^X(i) & N_k^Y(i)| / k, N_k the k nearest other samples by cosine
  similarity (mutual nearest-neighbour alignment, Huh et al. 2024, "The platonic representation hypothesis"). As
  their code prepares the features it is given (platonic-rep `prepare_features`), each side is first clipped to +-t,
  t the mean over samples of the `clip` quantile of the sample's |values| (0.95; 1 = no clipping): a few outlier
  dimensions, common in CLIP and DINOv2 ViTs, otherwise dominate the cosine similarities. Their code is given a
  model's every layer at once, so one t serves all its layers: repdrift.measurement.measure clips so (`clip_outliers`
  over the layers side by side) and calls this with clip = 1.

Bad input (NaN/inf, fewer than 2 samples, different sample counts, k >= n) raises ValueError naming the argument;
a degenerate but valid input (a side with no variance, a constant or all-zero sample) gives NaN.
"""

from __future__ import annotations

import numpy as np

from ._arrays import average_ranks, check_finite, float_array


def _pair(x, y, min_samples: int = 2, finite: bool = True) -> tuple[np.ndarray, np.ndarray]:
    x = float_array(x, "x", 2, finite)
    y = float_array(y, "y", 2, finite)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must hold the same samples (rows): got n = {x.shape[0]} and n = {y.shape[0]}")
    if x.shape[0] < min_samples:
        raise ValueError(f"x: expected at least {min_samples} samples (rows), got {x.shape[0]}")
    dtype = np.result_type(x.dtype, y.dtype)
    return x.astype(dtype, copy=False), y.astype(dtype, copy=False)


def _centred(a: np.ndarray) -> np.ndarray:
    return a - a.mean(axis=0, keepdims=True)


def procrustes(x, y) -> float:
    """Orthogonal Procrustes similarity in [0, 1]; NaN when a side has no variance."""
    x, y = _pair(x, y, finite=False)
    # Everything in float64: in float32 the centring, the norms and the cross product each err by ~1e-7 relative,
    # and procrustes(X, X) of D > n features came out 1.00002 (1.0000001 with only the product in float64).
    x, y = x.astype(np.float64, copy=False), y.astype(np.float64, copy=False)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: told below, by name
        mean_x, mean_y = x.mean(axis=0), y.mean(axis=0)
    if not (np.isfinite(mean_x).all() and np.isfinite(mean_y).all()):  # NaN or inf make a column mean so
        check_finite(x, "x")
        check_finite(y, "y")
    # Both sides centred: centring one side only, (X - 1 mx)^T Y, is exact in theory but adds an error of order
    # eps (mx my) / (sx sy) when the means dwarf the spread (tiny demo ViT features do).
    x, y = x - mean_x, y - mean_y
    nx, ny = float(np.linalg.norm(x)), float(np.linalg.norm(y))
    if nx == 0 or ny == 0:
        return float("nan")
    # The nuclear norm as the sum of sqrt(eigenvalues of M^T M) on the small side: a symmetric eigen solve is
    # several times cheaper than the SVD of M (the d x d solve outweighed the n x d product at d = 768).
    cross = (x.T @ y) / (nx * ny)
    small = cross.T @ cross if cross.shape[1] <= cross.shape[0] else cross @ cross.T
    values = np.linalg.eigvalsh(small)
    # With D > n the matrix has rank < D: its zero eigenvalues come out as rounding noise whose square roots add up
    # (1e-7 over 700 of them); below the rank tolerance (as numpy's matrix_rank) they are zero.
    values[values <= values.max() * small.shape[0] * np.finfo(np.float64).eps] = 0.0
    return float(np.sqrt(values).sum())


def _reduce(a: np.ndarray, threshold: float) -> np.ndarray:
    """The centred data on the fewest principal directions explaining `threshold` of its variance, at most
    (n - 1) // 2 of them (n x k)."""
    u, s, _ = np.linalg.svd(_centred(a), full_matrices=False)
    energy = np.cumsum(s**2)
    if energy[-1] == 0:
        return u[:, :0]
    keep = int(np.searchsorted(energy, threshold * energy[-1] * (1 - 1e-12)) + 1)
    keep = min(keep, (a.shape[0] - 1) // 2)
    return u[:, :keep] * s[:keep]


def _cca(x: np.ndarray, y: np.ndarray):
    """Canonical correlations (descending) of centred x and y, and x's canonical variates (n x k, unit norm)."""
    qx, _ = np.linalg.qr(x)
    qy, _ = np.linalg.qr(y)
    u, rho, _ = np.linalg.svd(qx.T @ qy, full_matrices=False)
    return np.clip(rho, 0.0, 1.0), qx @ u


def _check_threshold(threshold: float) -> None:
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold: expected a share of variance in (0, 1], got {threshold}")


def _reduced_pair(x, y, threshold: float):
    _check_threshold(threshold)
    x, y = _pair(x, y, min_samples=3)  # (n - 1) // 2 >= 1 direction a side
    return x, y, _reduce(x, threshold), _reduce(y, threshold)


def svcca(x, y, threshold: float = 0.99) -> float:
    """Mean canonical correlation after the SVCCA reduction of each side; NaN for a side without variance."""
    _, _, rx, ry = _reduced_pair(x, y, threshold)
    if min(rx.shape[1], ry.shape[1]) == 0:
        return float("nan")
    rho, _ = _cca(rx, ry)
    return float(rho.mean())


def pwcca(x, y, threshold: float = 0.99) -> float:
    """Projection-weighted mean canonical correlation after the SVCCA reduction (weights from the side with fewer
    kept directions); NaN for a side without variance."""
    x, y, rx, ry = _reduced_pair(x, y, threshold)
    if min(rx.shape[1], ry.shape[1]) == 0:
        return float("nan")
    if ry.shape[1] < rx.shape[1]:  # weight by the side with fewer directions, as google/svcca does
        rx, ry = ry, rx
    rho, variates = _cca(rx, ry)
    weights = np.abs(variates[:, : rho.size].T @ rx).sum(axis=1)  # over the directions CCA was given
    return float(weights @ rho / weights.sum())


def _upper(square: np.ndarray) -> np.ndarray:
    return square[np.triu_indices(square.shape[0], k=1)]


def _rdm(a: np.ndarray) -> np.ndarray | None:
    """1 - Pearson correlation between samples (rows), over the features; None if a sample is constant."""
    rows = a - a.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(rows, axis=1)
    if np.any(norms == 0):
        return None
    rows = rows / norms[:, None]
    return 1.0 - rows @ rows.T


def rsa(x, y) -> float:
    """Spearman correlation of the upper triangles of the two RDMs (at least 3 samples); NaN if a sample is constant
    over its features (its correlations are undefined)."""
    x, y = _pair(x, y, min_samples=3)
    dx, dy = _rdm(x), _rdm(y)
    if dx is None or dy is None:
        return float("nan")
    rx, ry = average_ranks(_upper(dx)), average_ranks(_upper(dy))
    rx -= rx.mean()
    ry -= ry.mean()
    denom = np.sqrt((rx @ rx) * (ry @ ry))
    return float("nan") if denom == 0 else float(rx @ ry / denom)


_BLOCK_ROWS = 2048  # similarities of this many samples at a time: 2048 x n floats, not n x n


def _neighbours(a: np.ndarray, k: int) -> np.ndarray | None:
    """Indices (n x k) of each sample's k most cosine-similar other samples, block by block; None if a sample is all
    zeros (no cosine similarity)."""
    norms = np.linalg.norm(a, axis=1)
    if np.any(norms == 0):
        return None
    unit = a / norms[:, None]
    n = unit.shape[0]
    out = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, _BLOCK_ROWS):
        stop = min(start + _BLOCK_ROWS, n)
        sim = unit[start:stop] @ unit.T
        sim[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # not its own neighbour
        out[start:stop] = np.argpartition(sim, n - k, axis=1)[:, n - k :]
    return out


def clip_outliers(a: np.ndarray, q: float) -> np.ndarray:
    """`a` clipped to +-t, t the mean over samples (rows) of the q-quantile of each sample's |values| (linear
    interpolation, as torch.quantile): platonic-rep's `remove_outliers` (exact=False); q = 1 leaves `a` as it is."""
    if q == 1:
        return a
    t = np.quantile(np.abs(a), q, axis=1).mean()
    return np.clip(a, -t, t)


def mutual_knn(x, y, k: int = 10, clip: float = 0.95) -> float:
    """Mean share of each sample's k nearest neighbours (cosine) that X and Y have in common, each side clipped at
    its `clip` quantile first (`clip_outliers`; 1 = not clipped); NaN if a sample is all zeros."""
    x, y = _pair(x, y)
    n = x.shape[0]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k < n:
        raise ValueError(f"k: expected an integer in 1..n - 1 = {n - 1} (the other samples), got {k!r}")
    if not 0 < clip <= 1:
        raise ValueError(f"clip: expected a quantile in (0, 1], got {clip!r}")
    nx, ny = _neighbours(clip_outliers(x, clip), k), _neighbours(clip_outliers(y, clip), k)
    if nx is None or ny is None:
        return float("nan")
    shared = (nx[:, :, None] == ny[:, None, :]).sum()  # each index at most once per row: pairs = the intersection
    return float(shared / (n * k))
