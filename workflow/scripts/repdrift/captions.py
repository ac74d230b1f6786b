"""Report captions that state the numbers a figure shows (reStructuredText, written next to the figure).

Snakemake reads a caption file when it builds the report, so a figure rule writes its caption beside its
figure and the report shows the numbers of this run of the study.
"""

from __future__ import annotations

from pathlib import Path


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _per_backbone(items: dict | list, key: str, digits: int = 3) -> str:
    if isinstance(items, dict):
        return ", ".join(f"{name} {_fmt(v, digits)}" for name, v in items.items())
    return ", ".join(f"{row['backbone']} {_fmt(row[key], digits)}" for row in items)


def cka_trajectory(n: dict) -> str:
    return (
        f"Linear CKA between the pre-trained and the fine-tuned model's block-{n['layer']} representation of a fixed "
        "probe subset of the test split after every epoch (epoch 0 = before fine-tuning), beside the test score "
        "(accuracy, or mAP for multi-label data). Lines are means over seeds, bands one standard deviation. "
        f"Mean CKA after epoch {n['epoch']}: {_per_backbone(n['final_cka'], 'mean', 4)}."
    )


def cka_vs_score(n: dict) -> str:
    means = "; ".join(
        f"{m['backbone']} {m['method']}: CKA {_fmt(m['cka'], 4)}, score {_fmt(m['score'])}" for m in n["means"]
    )
    return (
        f"Each point is one run: its final linear CKA to the pre-trained model (block {n['layer']}, test split) "
        f"against its test score. Means: {means}."
    )


def knn_forgetting(n: dict) -> str:
    drops = "; ".join(
        f"{r['backbone']} {_fmt(r['pre'])} -> {_fmt(r['full'])}" for r in n["full_vs_pretrained"]
    )
    return (
        f"Weighted k-NN accuracy (DINO protocol, k = {n['k']}) on the natural domain of every pre-trained "
        "backbone and, per method and pooling, the mean over its fine-tuned runs; a drop from the pre-trained bar "
        f"is forgetting. Pre-trained -> Full fine-tuning: {drops}."
    )


def similarity_space(n: dict) -> str:
    shares = "; ".join(
        f"{r['dataset']}/{r['backbone']} {r['inside']:.0%} of {r['runs']}" for r in n["share_inside"]
    )
    return (
        f"Test score against M_X (CKA to the pre-trained model, block {n['layer']}) for every Full and Scratch run; "
        f"the shaded region is M_X >= 1 - eta (eta = {n['eta']}); filled points are inside "
        f"T_X(eta, eps) (also A_X <= eps = {n['eps']}, A_X the {n['divergence']}-based divergence from the "
        f"pre-trained model's linear probe). Inside: {shares}."
    )


def cka_heatmap(n: dict) -> str:
    lows = "; ".join(
        f"{r['backbone']} {_fmt(r['cka'], 4)} (block {r['layer']}, epoch {r['epoch']})" for r in n["lowest"]
    )
    return (
        "Layer-wise linear CKA to the pre-trained model after every epoch, mean over the similarity study's "
        f"seeds. Lowest: {lows}."
    )


def cka_distribution(n: dict) -> str:
    stats = "; ".join(
        f"{r['backbone']} {_fmt(r['mean'], 4)} +- {_fmt(r['sd'], 4)} ({r['seeds']} seeds)" for r in n["per_backbone"]
    )
    return f"Final CKA to the pre-trained model (block {n['layer']}) across seeds. Mean +- SD: {stats}."


def correlation(n: dict) -> str:
    fits = "; ".join(
        f"{r['metric']} / {r['backbone']}: r = {_fmt(r['r'])} (p = {_fmt(r['p_value'])})" for r in n["r"]
    )
    return (
        f"Final CKA (block {n['layer']}) against k-NN accuracy and ECE, every run a point; lines are least-squares "
        f"fits of interval means (similarity in {n['n_intervals']} intervals, outliers by {n['outliers']}). "
        f"{fits}. The table of r for every block is results/analysis/correlation.csv."
    )


CAPTIONS = {f.__name__: f for f in (cka_trajectory, cka_vs_score, knn_forgetting, similarity_space, cka_heatmap,
                                     cka_distribution, correlation)}


def write_caption(name: str, numbers: dict, path: str | Path) -> None:
    Path(path).write_text(CAPTIONS[name](numbers) + "\n")
