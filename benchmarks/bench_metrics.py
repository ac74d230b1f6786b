"""Benchmark repdrift.metrics against the machine's matrix-product roofline and common implementations.

    .venv/bin/python benchmarks/bench_metrics.py            # full sizes, ~2-3 min on 2 cores
    .venv/bin/python benchmarks/bench_metrics.py --quick    # small sizes, a smoke test

Every ratio compares timings taken in this run. Each timing is the minimum over repeated runs (--reps for
CKA, one more for the cheaper k-NN), taken in turns (roofline, ours, roofline, ours, ...) so that load from
other processes hits both alike. The slow baselines are timed on a part of the work and scaled (said so
in the output). The bootstrap of repdrift.analysis.paper.interval_correlation, all replicates at once, is timed against
the per-replicate loop it replaced.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from repdrift.analysis.paper import _bootstrap
from repdrift.metrics import center_layers, knn_classify, layerwise_cka, mutual_knn, procrustes, pwcca, rsa
from repdrift.metrics.knn import _MAX_BLOCK_BYTES, l2_normalize


def best_of(reps: int, *fns):
    """Minimum wall time of each fn over `reps` interleaved rounds."""
    best = [np.inf] * len(fns)
    for _ in range(reps):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t)
    return best


class OtherLoad:
    """Share of the CPUs used by other processes (not this one or its waited-for children) over a section (Linux
    /proc/stat), to judge a run's noise: `others` after it (None where /proc/stat is missing), printed if `report`."""

    def __init__(self, report: bool = True):
        self.report = report

    def __enter__(self):
        self.start, self.others = self._sample(), None
        return self

    def __exit__(self, *exc):
        if self.start is None or (end := self._sample()) is None:
            return
        busy, own, wall = (e - s for e, s in zip(end, self.start))
        self.others = max(0.0, busy / os.sysconf("SC_CLK_TCK") - own) / (wall * os.cpu_count())
        if self.report:
            print(f"(other processes used {self.others:.0%} of the {os.cpu_count()} CPUs during this section)")

    @staticmethod
    def _sample():
        try:
            with open("/proc/stat") as f:
                ticks = [int(v) for v in f.readline().split()[1:9]]
        except OSError:
            return None
        t = os.times()
        own = t.user + t.system + t.children_user + t.children_system
        return sum(ticks) - ticks[3] - ticks[4], own, time.perf_counter()


def gram_route_linear_cka(x: np.ndarray, y: np.ndarray, gemm: bool = True) -> float:
    """Linear CKA of one layer pair the way torch CKA packages compute it, O(n^2 d): both n x n Gram matrices,
    centred, Frobenius products, in the input dtype. Generous to them: the centring is the O(n^2) one of
    Kornblith et al.'s ``center_gram``, not a product with an n x n centring matrix (O(n^3)).

    gemm=True forms each Gram with a GEMM, as torch's ``X @ X.T`` does; gemm=False lets numpy spot the
    SYRK (half the flops), the fastest Gram route numpy offers."""

    def centred_gram(a):
        g = a @ (a.copy().T if gemm else a.T)  # a distinct operand keeps numpy from switching to SYRK
        means = g.mean(0, dtype=np.float64)
        means -= means.mean() / 2
        g -= means[:, None].astype(g.dtype)
        g -= means[None, :].astype(g.dtype)
        return g

    k, l = centred_gram(x), centred_gram(y)
    return float(np.vdot(k, l) / (np.linalg.norm(k) * np.linalg.norm(l)))


def bench_cka(n, d, layers, reps, rng):
    print(f"\n== layer-wise linear CKA: {layers} x {layers} layers, n = {n}, d = {d}, float32 features ==")
    xs = rng.standard_normal((layers, n, d), dtype=np.float32)
    ys = xs + rng.standard_normal((layers, n, d), dtype=np.float32)
    cx = center_layers(xs)
    cy = [np.ascontiguousarray(v) for v in center_layers(ys).layers]

    def roofline():  # the products layerwise_cka does, alone: X_l^T X_l, Y_l^T Y_l (SYRK), [X_1 .. X_L]^T Y_l
        for v in cx.layers:
            v.T @ v
        for y in cy:
            y.T @ y
            cx.wide.T @ y

    out = {}
    # The Gram routes are timed on one layer pair in the same rounds, so that other load hits all alike.
    t_roof, t_ours, t_gemm_pair, t_syrk_pair = best_of(
        reps,
        roofline,
        lambda: out.setdefault("ours", layerwise_cka(xs, ys)),
        lambda: gram_route_linear_cka(xs[0], ys[0]),
        lambda: gram_route_linear_cka(xs[0], ys[0], gemm=False),
    )
    (t_reuse,) = best_of(1, lambda: layerwise_cka(cx, ys))
    flops = 2 * n * d * d * layers * layers + 2 * n * d * d * layers  # GEMMs + 2L SYRKs (n d^2 each)
    pairs = layers * layers
    t_gram, t_syrk = t_gemm_pair * pairs, t_syrk_pair * pairs
    check = gram_route_linear_cka(xs[0].astype(np.float64), ys[0].astype(np.float64))
    print(f"roofline (same products, numpy): {t_roof:7.2f} s  ({flops / t_roof / 1e9:.0f} GFLOP/s)")
    print(f"layerwise_cka(xs, ys):           {t_ours:7.2f} s  (incl. validation, float64 centring, self-terms)")
    print(f"layerwise_cka(centred xs, ys):   {t_reuse:7.2f} s  (pre-trained side centred once and reused)")
    for name, t_pair, total in (("GEMM Grams, torch-style", t_gemm_pair, t_gram), ("SYRK Grams", t_syrk_pair, t_syrk)):
        print(f"Gram route ({name}), 1 layer pair: {t_pair:.2f} s -> x {pairs} pairs = {total:.1f} s (scaled)")
    print(f"agreement with the Gram route (float64, pair 0,0): |diff| = {abs(out['ours'][0, 0] - check):.1e}")
    print(f"RATIO cka achieved/roofline = {t_roof / t_ours:.2f}   (target >= 0.8; reuse mode {t_roof / t_reuse:.2f})")
    print(f"RATIO cka speed-up vs Gram route (torch-style) = {t_gram / t_ours:.1f}x   (target >= 20x)")
    print(f"RATIO cka speed-up vs Gram route with numpy SYRK = {t_syrk / t_ours:.1f}x")
    return t_roof / t_ours, t_gram / t_ours


def bench_knn(n_query, n_bank, d, k, reps, sk_queries, rng):
    print(f"\n== k-NN (DINO, k = {k}): {n_query} queries x {n_bank} bank x {d}, float32, 100 classes ==")
    centres = rng.standard_normal((100, d), dtype=np.float32)
    bank_labels = rng.integers(0, 100, n_bank)
    bank = centres[bank_labels] + 2 * rng.standard_normal((n_bank, d), dtype=np.float32)
    queries = centres[rng.integers(0, 100, n_query)] + 2 * rng.standard_normal((n_query, d), dtype=np.float32)
    qn, bn = l2_normalize(queries), l2_normalize(bank)
    chunk = max(1, _MAX_BLOCK_BYTES // (n_bank * 4))
    block = np.empty((chunk, n_bank), np.float32)

    def roofline():  # the same chunked products Q @ B^T into a reused block, nothing else
        for lo in range(0, n_query, chunk):
            np.matmul(qn[lo : lo + chunk], bn.T, out=block[: min(chunk, n_query - lo)])

    out = {}
    t_roof, t_ours = best_of(
        reps, roofline, lambda: out.setdefault("ours", knn_classify(bank, bank_labels, queries, k=k))
    )
    flops = 2 * n_query * n_bank * d
    rate = f"{flops / t_roof / 1e9:.0f} GFLOP/s, {chunk} queries per chunk"
    print(f"roofline (same chunked Q @ B^T): {t_roof:7.2f} s  ({rate})")
    print(f"knn_classify:                    {t_ours:7.2f} s  (incl. validation, normalisation, top-k, votes)")

    from sklearn.neighbors import KNeighborsClassifier

    # The same protocol in sklearn, brute force, weights exp(s / T): (a) metric="cosine", the protocol's own
    # metric; (b) euclidean distance on unit vectors, sklearn's fastest exact path (s = 1 - d^2 / 2 there).
    configs = {
        "cosine": (queries, bank, dict(metric="cosine", weights=lambda dist: np.exp((1 - dist) / 0.07))),
        "euclidean on unit vectors": (qn, bn, dict(weights=lambda dist: np.exp((1 - dist**2 / 2) / 0.07))),
    }
    t_sk = {}
    for name, (q, b, kw) in configs.items():
        clf = KNeighborsClassifier(k, algorithm="brute", **kw).fit(b, bank_labels)
        (t_sub,) = best_of(max(1, reps - 1), lambda: out.__setitem__(name, clf.predict(q[:sk_queries])))
        t_sk[name] = t_sub * n_query / sk_queries
        agree = np.mean(out[name] == out["ours"][0][:sk_queries])
        print(
            f"sklearn brute-force, {name}, {sk_queries} queries: {t_sub:.2f} s -> x {n_query / sk_queries:g} = "
            f"{t_sk[name]:.1f} s (timed on a subset, scaled); predictions identical to ours: {agree:.2%}"
        )
    print(f"RATIO knn achieved/roofline = {t_roof / t_ours:.2f}   (target >= 0.7)")
    print(f"RATIO knn speed-up vs sklearn (cosine) = {t_sk['cosine'] / t_ours:.1f}x   (target >= 5x)")
    print(
        f"RATIO knn speed-up vs sklearn (euclidean on unit vectors) = {t_sk['euclidean on unit vectors'] / t_ours:.1f}x"
    )
    return t_roof / t_ours, t_sk["cosine"] / t_ours


def loop_bootstrap(similarity, metric, n_intervals, outliers, n_bootstrap, seed=0):
    """interval_correlation's bootstrap one replicate at a time, as it was before it was vectorised."""
    rng = np.random.default_rng(seed)
    boot = np.full(n_bootstrap, np.nan)
    for b in range(n_bootstrap):
        pick = rng.integers(0, similarity.size, similarity.size)
        sim, met = similarity[pick], metric[pick]
        if np.ptp(sim) == 0:
            continue
        centres = np.linspace(sim.min(), sim.max(), n_intervals)
        nearest = np.abs(sim[:, None] - centres[None, :]).argmin(axis=1)
        x, y = [], []
        for i, centre in enumerate(centres):
            members = met[nearest == i]
            if members.size == 0:
                continue
            if outliers == "iqr":
                q1, q3 = np.percentile(members, [25, 75])
                spread = 1.5 * (q3 - q1)
                members = members[(members >= q1 - spread) & (members <= q3 + spread)]
            x.append(centre)
            y.append(members.mean())
        if len(x) >= 3 and np.ptp(y) > 0:
            boot[b] = np.corrcoef(x, y)[0, 1]
    return boot


def bench_bootstrap(n, n_intervals, replicates, reps, rng):
    print(f"\n== interval_correlation bootstrap: {replicates} replicates, n = {n} runs, {n_intervals} intervals ==")
    sim = rng.uniform(0.5, 1.0, n)
    metric = 0.2 + 0.5 * sim + rng.normal(0, 0.03, n) + (rng.uniform(size=n) < 0.1) * rng.normal(0, 0.3, n)
    out = {}
    t_loop, t_ours = best_of(
        reps,
        lambda: out.__setitem__("loop", loop_bootstrap(sim, metric, n_intervals, "iqr", replicates)),
        lambda: out.__setitem__("ours", _bootstrap(sim, metric, n_intervals, "iqr", replicates, 0)),
    )
    same_nan = np.array_equal(np.isnan(out["loop"]), np.isnan(out["ours"]))
    diff = np.nanmax(np.abs(out["loop"] - out["ours"]))
    print(f"per-replicate loop (IQR rule):   {t_loop:7.3f} s")
    print(f"all replicates at once:          {t_ours:7.3f} s  (same nan replicates: {same_nan}, max |diff| {diff:.1e})")
    print(f"RATIO bootstrap speed-up vs per-replicate loop = {t_loop / t_ours:.1f}x")
    return t_loop / t_ours


def bench_similarity(n, d, k, reps, rng):
    """The measures beside CKA against the products they need; PWCCA and RSA are SVD- and sort-bound: timed only."""
    print(f"\n== similarity measures: n = {n}, d = {d}, float32 features ==")
    x = rng.standard_normal((n, d), dtype=np.float32)
    y = (x @ rng.standard_normal((d, d), dtype=np.float32) / np.sqrt(d)).astype(np.float32)
    y += rng.standard_normal((n, d), dtype=np.float32)
    t_roof, t_ours = best_of(reps, lambda: x.T @ y, lambda: procrustes(x, y))
    print(f"roofline X^T Y:                  {t_roof:7.3f} s  ({2 * n * d * d / t_roof / 1e9:.0f} GFLOP/s)")
    print(f"procrustes:                      {t_ours:7.3f} s  (incl. validation, centring, the d x d eigen-solve)")
    ratios = {"procrustes": t_roof / t_ours}
    print(f"RATIO procrustes achieved/roofline = {ratios['procrustes']:.2f}   (target >= 0.5)")
    t_roof, t_ours = best_of(reps, lambda: (x @ x.T, y @ y.T), lambda: mutual_knn(x, y, k=k))
    print(f"roofline X X^T and Y Y^T:        {t_roof:7.3f} s  ({4 * n * n * d / t_roof / 1e9:.0f} GFLOP/s)")
    print(f"mutual_knn (k = {k}):             {t_ours:7.3f} s  (incl. normalisation, top-k of both, overlap)")
    ratios["mutual_knn"] = t_roof / t_ours
    print(f"RATIO mutual_knn achieved/roofline = {ratios['mutual_knn']:.2f}   (target >= 0.5)")
    (t_pw,) = best_of(1, lambda: pwcca(x, y))
    print(f"pwcca:                           {t_pw:7.3f} s  (two n x d SVDs, two QRs: SVD-bound, no target)")
    (t_rsa,) = best_of(1, lambda: rsa(x, y))
    print(f"rsa:                             {t_rsa:7.3f} s  (two n x n RDMs, ranks of n(n-1)/2 pairs: sort-bound)")
    return ratios


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--only", choices=["cka", "knn", "bootstrap", "similarity"], help="run one section")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    try:
        from threadpoolctl import threadpool_info

        for lib in threadpool_info():
            arch = lib.get("architecture", "")
            print(f"threadpool: {lib['internal_api']} {lib.get('version')} {arch} threads={lib['num_threads']}")
    except ImportError:
        pass
    t0 = time.perf_counter()
    cka_size, knn_size = (
        ((2000, 128, 4), (1000, 5000, 128, 200)) if args.quick else ((10_000, 768, 13), (10_000, 50_000, 768, 500))
    )
    results = {}
    sections = {
        "cka": lambda: bench_cka(*cka_size, args.reps, rng),
        "knn": lambda: bench_knn(*knn_size[:3], 20, args.reps + 1, knn_size[3], rng),
        "bootstrap": lambda: bench_bootstrap(60, 10, 1000, args.reps + 1, rng),
        "similarity": lambda: bench_similarity(*((2000, 128) if args.quick else (10_000, 768)), 10, args.reps, rng),
    }
    for name, section in sections.items():
        if args.only in (None, name):
            with OtherLoad():
                results[name] = section()
    parts = []
    if "cka" in results:
        parts.append(f"cka roofline {results['cka'][0]:.2f} (>= 0.8), vs Gram {results['cka'][1]:.1f}x (>= 20x)")
    if "knn" in results:
        parts.append(
            f"knn roofline {results['knn'][0]:.2f} (>= 0.7), vs sklearn cosine {results['knn'][1]:.1f}x (>= 5x)"
        )
    if "bootstrap" in results:
        parts.append(f"bootstrap vs loop {results['bootstrap']:.1f}x")
    if "similarity" in results:
        parts.append(", ".join(f"{m} roofline {r:.2f} (>= 0.5)" for m, r in results["similarity"].items()))
    print(f"\nSUMMARY {'; '.join(parts)}; total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
