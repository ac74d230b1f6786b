"""Independent reference implementations the metric tests compare against: written from the papers' formulas
with explicit matrices and loops, slow and obvious (never the package's code)."""

import numpy as np


def hsic_eq1(k, l):
    """Kornblith et al. 2019, Eq. 1: HSIC(K, L) = tr(K H L H) / (n - 1)^2, H = I - 11^T / n."""
    n = k.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return np.trace(k @ h @ l @ h) / (n - 1) ** 2


def hsic_unbiased(k, l):
    """Song et al. 2012 (as Eq. 3 of Nguyen et al. 2021): the unbiased HSIC_1 with zero-diagonal K, L."""
    n = k.shape[0]
    k, l = k.copy(), l.copy()
    np.fill_diagonal(k, 0)
    np.fill_diagonal(l, 0)
    one = np.ones(n)
    return (
        np.trace(k @ l) + one @ k @ one * (one @ l @ one) / ((n - 1) * (n - 2)) - 2 / (n - 2) * one @ k @ l @ one
    ) / (n * (n - 3))


def cka_ref(k, l, debiased=False):
    hsic = hsic_unbiased if debiased else hsic_eq1
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def rbf_gram_ref(x, threshold):
    """exp(-d^2 / (2 threshold^2 median(d^2))), median over all n^2 squared distances."""
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return np.exp(-d2 / (2 * threshold**2 * np.median(d2)))


def guo_reference_ece(probs, labels, n_bins=15):
    """gpleiss/temperature_scaling _ECELoss, transcribed to numpy: bins (lo, hi], one pass per bin."""
    edges = np.linspace(0, 1, n_bins + 1)
    confidences, predictions = probs.max(1), probs.argmax(1)
    accuracies = predictions == labels
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (confidences > lo) & (confidences <= hi)
        if in_bin.mean() > 0:
            ece += abs(confidences[in_bin].mean() - accuracies[in_bin].mean()) * in_bin.mean()
    return ece


def dino_reference(bank, labels, queries, k, t, num_classes):
    """DINO eval_knn.py, written out per query: normalise, full sort, sum exp(s / T) per class."""
    bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    scores = np.zeros((len(queries), num_classes))
    for i, q in enumerate(queries):
        s = bank @ (q / np.linalg.norm(q))
        for j in np.argsort(-s, kind="stable")[:k]:
            scores[i, labels[j]] += np.exp(s[j] / t)
    return scores


def minibatch_ref(x_batches, y_batches):
    """Nguyen et al. 2021, Eq. 2: means of Song et al.'s HSIC_1 over batches, written with Gram matrices."""

    def h(f):
        return np.mean([hsic_unbiased(*f(x, y)) for x, y in zip(x_batches, y_batches)])

    return h(lambda x, y: (x @ x.T, y @ y.T)) / np.sqrt(
        h(lambda x, y: (x @ x.T, x @ x.T)) * h(lambda x, y: (y @ y.T, y @ y.T))
    )
