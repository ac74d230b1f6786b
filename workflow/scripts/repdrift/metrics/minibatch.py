"""Minibatch linear CKA for sample counts too large to hold at once.

Nguyen, Raghu and Kornblith, "Do Wide and Deep Networks Learn the Same Things?", ICLR 2021, Eq. 2-3:

    CKA_minibatch = mean_b HSIC_1(X_b, Y_b) / sqrt(mean_b HSIC_1(X_b, X_b) * mean_b HSIC_1(Y_b, Y_b)),

where HSIC_1 is the unbiased estimator of Song et al. (2012) on the linear kernels of batch b. It is computed
here in feature space (the U-statistic form of :mod:`repdrift.metrics.layerwise`, divided by m(m-3)).
Every batch must have the same size m >= 4 (the paper averages equally weighted batches; drop or fold a
short last batch). The estimate is unbiased per batch, so it does not depend on m the way biased CKA
does; batches should be random samples of the data set.
"""

from __future__ import annotations

import numpy as np

from ._arrays import to_numpy
from .layerwise import CenteredLayers, _check_debiased_n, _ratio, hsic_terms


class MinibatchCKA:
    """Accumulate HSIC_1 over equal-size batches; :meth:`result` gives the CKA.

    Each :meth:`update` takes one batch of the same samples from both models: x (m, d1) and y (m, d2) for
    one pair of layers, or x (L1, m, d1) and y (L2, m, d2) (arrays or lists of layers) for all layers. With
    layers, pairwise=True gives the (L1, L2) matrix and pairwise=False the diagonal (L,).
    """

    def __init__(self, pairwise: bool = True):
        self.pairwise = pairwise
        self.n_batches = 0
        self.batch_size: int | None = None
        self._single: bool | None = None
        self._sums: list[np.ndarray] | None = None

    def update(self, x, y) -> None:
        single = _is_single(x, "x")
        if single != _is_single(y, "y"):
            raise ValueError("x and y must both be one layer (m, d) or both be layers (L, m, d)")
        if self._single is not None and single != self._single:
            raise ValueError("every batch must have the same layout as the first: one layer (m, d) or layers (L, m, d)")
        cx = CenteredLayers([x] if single else x, "x")
        m = cx.n
        if self.batch_size is None:
            _check_debiased_n(m)
        elif m != self.batch_size:
            raise ValueError(
                f"minibatch CKA needs equal-size batches: batch {self.n_batches} has {m} samples, the first had "
                f"{self.batch_size}; drop or merge the short batch"
            )
        terms = hsic_terms(cx, [y] if single else y, pairwise=self.pairwise and not single, debiased=True)
        terms = [t / (m * (m - 3.0)) for t in terms]  # U-statistic HSIC_1 of Song et al. (2012)
        if self._sums is None:
            self._sums = terms
        elif any(s.shape != t.shape for s, t in zip(self._sums, terms)):
            raise ValueError("every batch must have the same number of layers on each side")
        else:
            self._sums = [s + t for s, t in zip(self._sums, terms)]
        self.batch_size, self._single = m, single
        self.n_batches += 1

    def result(self):
        """CKA: a float for one layer pair, else the (L1, L2) matrix or (L,) diagonal."""
        if self._sums is None:
            raise ValueError("minibatch CKA: no batch was given")
        cross, hx, hy = self._sums  # the 1/k of the three means cancels
        denom = np.sqrt(np.outer(hx, hy)) if (self.pairwise and not self._single) else np.sqrt(hx * hy)
        out = _ratio(cross, denom)
        return float(out[0]) if self._single else out


def minibatch_cka(batches, *, pairwise: bool = True):
    """Minibatch CKA (Nguyen et al. 2021) over an iterable of (x_batch, y_batch) pairs; see :class:`MinibatchCKA`."""
    acc = MinibatchCKA(pairwise=pairwise)
    for x, y in batches:
        acc.update(x, y)
    return acc.result()


def _is_single(x, name: str) -> bool:
    """True for one (m, d) layer, False for (L, m, d) or a list of layers."""
    if isinstance(x, (list, tuple)):
        return False
    ndim = to_numpy(x, name).ndim
    if ndim not in (2, 3):
        raise ValueError(f"{name}: expected a batch (m, d) or layers (L, m, d), got {ndim}-d")
    return ndim == 2
