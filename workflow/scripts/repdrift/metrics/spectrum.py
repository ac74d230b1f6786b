"""The rank of a weight change from its singular values (Biderman et al. 2024, "LoRA Learns Less and Forgets Less",
TMLR: the rank needed to explain a share of the change's spectral energy).

`energy_rank(s, energy)`: the smallest k with s_1^2 + ... + s_k^2 >= energy x (s_1^2 + ... + s_n^2), the singular
values sorted in decreasing order (they are sorted here); 0 for no change (every s_i = 0). The comparison allows a
relative rounding error of 1e-12, so that energy 1.0 gives the numerical rank (the count of singular values that hold
any energy above rounding) rather than n because of the last bits of a cumulative sum.
"""

from __future__ import annotations

import numpy as np

RELATIVE_TOLERANCE = 1e-12


def energy_rank(singular_values, energy: float = 0.9) -> int:
    """The smallest k whose top-k singular values hold `energy` (0 < energy <= 1) of the squared Frobenius norm; 0
    when the change is zero. `singular_values`: any order, non-negative, finite."""
    if not 0 < energy <= 1:
        raise ValueError(f"energy must be in (0, 1], got {energy}")
    s = np.asarray(singular_values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(s)) or np.any(s < 0):
        raise ValueError("singular_values must be finite and non-negative")
    squares = np.sort(s)[::-1] ** 2
    total = squares.sum()
    if total == 0:
        return 0
    cumulative = np.cumsum(squares)
    threshold = energy * total * (1 - RELATIVE_TOLERANCE)
    return int(np.searchsorted(cumulative, threshold, side="left")) + 1
