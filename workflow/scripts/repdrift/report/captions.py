"""Report captions that state the numbers a figure shows (reStructuredText, written next to the figure).

Snakemake reads a caption file when it builds the report, so a figure rule writes its caption beside its
figure and the report shows the numbers of this run of the study. Every similarity caption says which runs it
shows, the CKA estimator, the layer and the number of images n the CKA is measured on.
"""

from __future__ import annotations

from pathlib import Path


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _per_backbone(items: dict | list, key: str, digits: int = 3) -> str:
    if isinstance(items, dict):
        return ", ".join(f"{name} {_fmt(v, digits)}" for name, v in items.items())
    return ", ".join(f"{row['backbone']} {_fmt(row[key], digits)}" for row in items)


def _similarity(n: dict) -> str:
    runs = ", ".join(f"{backbone} {count}" for backbone, count in n["runs"].items())
    where = f"Runs: the similarity grid `{n['grid']}`'s, per backbone" if n.get("grid") else "Runs per backbone"
    return (
        f"{where}: {runs}. Similarity: linear CKA, {n['estimator']} estimator, "
        f"{n['layer']}, on n = {n['n']} test images per run (the same images at every epoch)."
    )


def cka_trajectory(n: dict) -> str:
    return (
        "Similarity between the pre-trained and the fine-tuned model after every epoch (epoch 0 = before "
        "fine-tuning), beside the test score (accuracy, or mAP for multi-label data); the paper's Fig. 4a. Lines are "
        f"means over seeds, bands one standard deviation. {_similarity(n)} Mean similarity after epoch "
        f"{n['epoch']}: {_per_backbone(n['final_cka'], 'mean', 4)}. In the interactive chart a menu shows any other "
        "similarity measure of the study instead (Procrustes, PWCCA, RSA, mutual k-NN, RBF CKA)."
    )


def cka_vs_score(n: dict) -> str:
    means = "; ".join(
        f"{m['backbone']}: similarity {_fmt(m['cka'], 4)}, score {_fmt(m['score'])} ({m['runs']} runs)"
        for m in n["means"]
    )
    return (
        "Each point is one run: its final similarity to the pre-trained model against its test score (the "
        f"paper's Fig. 4b). {_similarity(n)} Means: {means}."
    )


def knn_forgetting(n: dict) -> str:
    drops = "; ".join(
        f"{r['backbone']} ({r['pool']}) {_fmt(r['pre'])} -> {_fmt(r['full'])} +- {_fmt(r['half'])} ({r['runs']} runs)"
        for r in n["full_vs_pretrained"]
    )
    return (
        f"Weighted k-NN accuracy (DINO protocol, k = {n['k']}) on the natural domain of each pre-trained backbone "
        f"and of its fine-tuned runs in the similarity grid `{n['grid']}` (the paper's Fig. 1a): mean over seeds "
        f"with a {n['confidence']:.0%} t confidence interval. A drop from the pre-trained bar is forgetting. "
        f"Pre-trained -> fine-tuned: {drops}. Table 2 has every dataset."
    )


def similarity_space(n: dict) -> str:
    shares = "; ".join(f"{r['dataset']}/{r['backbone']} {r['inside']:.0%} of {r['runs']}" for r in n["share_inside"])
    return (
        f"Test score against M_X, the final similarity to the pre-trained model, for every Full and Scratch run of "
        f"the study that has a Linear run (the pre-trained model's probe) of the same dataset, backbone and pool; "
        f"not only the similarity grid. {_similarity(n)} The shaded region is M_X >= 1 - eta (eta = {n['eta']}); "
        f"filled points are inside T_X(eta, eps) (also A_X <= eps = {n['eps']}, A_X the {n['divergence']}-based "
        f"divergence from the pre-trained model's linear probe). Observed M_X: {_fmt(n['range'][0])} to "
        f"{_fmt(n['range'][1])}. Inside: {shares}. results/analysis/similarity_sweep.csv sweeps eta and eps."
    )


def cka_heatmap(n: dict) -> str:
    lows = "; ".join(f"{r['backbone']} {_fmt(r['cka'], 4)} ({r['where']}, epoch {r['epoch']})" for r in n["lowest"])
    return (
        "Similarity to the pre-trained model at every block and at the final representation, after every epoch, "
        f"mean over seeds. {_similarity(n)} Lowest: {lows}."
    )


def cka_distribution(n: dict) -> str:
    stats = "; ".join(
        f"{r['backbone']} {_fmt(r['mean'], 4)} +- {_fmt(r['sd'], 4)} ({r['seeds']} seeds)" for r in n["per_backbone"]
    )
    return (
        f"Final similarity to the pre-trained model across seeds (the paper's Fig. 1b). {_similarity(n)} "
        f"Mean +- SD: {stats}."
    )


def correlation(n: dict) -> str:
    fits = "; ".join(
        f"{r['backbone']} / {r['metric']}: r = {_fmt(r['r'], 2)} (CI {_fmt(r['r_lo'], 2)} to {_fmt(r['r_hi'], 2)}, "
        f"{r['runs']} runs, {r['intervals']} intervals used, {r['removed']} outliers, "
        f"{r['bootstrap_valid']} of {r['bootstrap']} bootstrap replicates valid"
        f"{'; not usable: ' + r['note'] if r['note'] else ''})"
        for r in n["fits"]
    )
    return (
        "The paper's Fig. 5: final similarity against k-NN accuracy and the k-NN vote's ECE on the natural domain, "
        "and (an extra panel, not in the paper) the target test set's ECE. The similarity is discretised "
        f"({n['rule']}), each run assigned to the nearest interval centre. Black: runs at their interval's centre "
        "(hollow: not used, as an outlier or in an interval of too few runs; a similarity outlier at its own "
        "similarity); red points: each used interval's mean; red line: the least-squares fit of the interval means. "
        f"{_similarity(n)} r is Pearson's on the interval means with a {n['confidence']:.0%} bootstrap CI over "
        f"runs: {fits}. results/analysis/correlation.csv has every layer."
    )


CAPTIONS = {
    f.__name__: f
    for f in (
        cka_trajectory,
        cka_vs_score,
        knn_forgetting,
        similarity_space,
        cka_heatmap,
        cka_distribution,
        correlation,
    )
}


def write_caption(name: str, numbers: dict, path: str | Path) -> None:
    Path(path).write_text(CAPTIONS[name](numbers) + "\n")
