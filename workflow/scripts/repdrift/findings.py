"""The findings page: each claim of the paper (Zu et al. 2025) beside what this study measures, with a verdict.

A claim is split into parts, each a number with a confidence interval (CI) and a band the paper's words put it in:
a part *agrees* when its CI lies inside the band, *disagrees* when its CI lies outside it, and is *inconclusive*
when the CI spans the band's edge (or cannot be formed). A claim agrees when all its parts agree, disagrees when
any part disagrees, and is inconclusive otherwise. The bands are the paper's own numbers where it gives them (0.4,
0.45), the sign of a difference or a slope, or one half for a share of cells won ("beats" = wins more often than
not). Where the paper words a strength without a number ("strong", "little", "negligible" correlation), the claim
is judged as the ordering those words imply (strong > moderate > little > negligible), never against a threshold.

(a) Sec. 3.1 / Table 1 and Sec. 3.3 / Fig. 4b: pre-trained fine-tuning beats Scratch and Linear, cell by cell
    (share of cells won, exact Clopper-Pearson CI treating cells as independent), while final similarity stays low
    (mean over the similarity grid's seeds, t CI; ViT and OpenCLIP < 0.4, DINOv2 < 0.45).
(b) Sec. 3.3 / Fig. 4a: similarity drops sharply first (first-epoch drop minus the mean per-epoch change after it,
    > 0), then supervised models keep decaying (slope of the trajectory's second half < 0) while self-supervised
    ones recover (> 0); t CIs over seeds.
(c) Sec. 3.2 / Table 2: supervised pre-training forgets less on the natural domain: its k-NN drop from the
    pre-trained model is smaller than each other backbone's (the cell-by-cell difference of drops, dataset x
    pool, Full runs, in k-NN accuracy points, t CI of its mean over cells > 0).
(d) Sec. 3.3 / Fig. 5: on the similarity grid, |r| of the interval fit of CKA vs k-NN and vs natural-domain ECE is
    ordered as the paper's words: supervised ViT (strong) above OpenCLIP (little with k-NN, moderate with ECE) and
    DINOv2 (negligible), OpenCLIP's ECE above its k-NN; bootstrap CI of each difference of |r|. ViT's relation is
    "clear" when its r's CI excludes 0 (this part can agree or stay inconclusive, not disagree).
Cells of different datasets are compared on the seeds every cell has (the Table 1 grid's), so no comparison mixes
a 20-seed cell with one-seed cells; no mean mixes accuracy with mAP.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from scipy import stats

from repdrift.analysis import ESTIMATORS, cka_sample_sizes, grid_runs, layer_name, mean_ci, resolve_layer

AGREES, DISAGREES, INCONCLUSIVE = "agrees", "disagrees", "inconclusive"
PARADIGM_NAMES = {"supervised": "supervised ViT", "clip": "OpenCLIP", "self_supervised": "DINOv2"}
# The paper's final-similarity levels (Sec. 3.3): "VIT, OPENCLIP < 0.4; DINOv2 < 0.45".
LOW_SIMILARITY = {"supervised": 0.4, "clip": 0.4, "self_supervised": 0.45}
# Sec. 3.3, Fig. 5: the strength of CKA vs (k-NN, ECE) per paradigm, and the order of the words.
PAPER_STRENGTH = {
    "supervised": ("strong", "strong"),
    "clip": ("little", "moderate"),
    "self_supervised": ("negligible", "negligible"),
}
STRENGTH_ORDER = {"negligible": 0, "little": 1, "moderate": 2, "strong": 3}
# The paper's own Table 1 (CLS values), counted the way claim (a) counts cells.
PAPER_TABLE1 = "its own Table 1 has Full above Linear in 10 of 15 cells and Scratch below both in 5 of 5"
NOT_JUDGED = [
    "Sec. 3.1: supervised ViT reaches higher accuracy than OpenCLIP and DINOv2; DINOv2 does better with mean-patch "
    "pooling, ViT and OpenCLIP with the CLS token (Table 1 shows both, with the seeds used).",
    "Sec. 3.2: forgetting is largest after fine-tuning on the most complex dataset (MedFM-Chest) (see Table 2).",
    "Sec. 3.2 / Fig. 3: attention maps: pre-trained models attend to non-semantic regions, fine-tuning improves "
    "OpenCLIP's and DINOv2's focus more than ViT's (a visual claim; see the attention maps).",
    "Sec. 3.3: ISIC 2018 has the lowest similarity among the datasets (compare the debiased estimator across "
    "datasets, whose n differ; the biased one is comparable only at equal n).",
    "Sec. 3.3: some runs (e.g. OpenCLIP's) have both high accuracy and high similarity (see the similarity space "
    "figure and results/analysis/similarity_sweep.csv).",
]


@dataclass
class Part:
    label: str
    measured: str
    verdict: str


@dataclass
class Claim:
    key: str
    title: str
    paper: str
    rule: str
    parts: list[Part] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        verdicts = {p.verdict for p in self.parts}
        if not verdicts:
            return INCONCLUSIVE
        if DISAGREES in verdicts:
            return DISAGREES
        return AGREES if verdicts == {AGREES} else INCONCLUSIVE


# --- statistics ------------------------------------------------------------------------------------------------
def band_verdict(lo: float, hi: float, low: float = -math.inf, high: float = math.inf) -> str:
    """`agrees` if the CI [lo, hi] lies inside the band (low, high), `disagrees` if it lies outside it."""
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return INCONCLUSIVE
    if lo > low and hi < high:
        return AGREES
    if hi <= low or lo >= high:
        return DISAGREES
    return INCONCLUSIVE


def share_ci(wins: int, cells: int, confidence: float) -> tuple[float, float]:
    """Exact (Clopper-Pearson) CI of the share of cells won."""
    if cells == 0:
        return math.nan, math.nan
    ci = stats.binomtest(wins, cells).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def _ci(lo: float, hi: float, digits: int = 3) -> str:
    return "no CI" if not (np.isfinite(lo) and np.isfinite(hi)) else f"CI {lo:.{digits}f} to {hi:.{digits}f}"


def _name(backbone: str, paradigms: dict[str, str]) -> str:
    paradigm = paradigms.get(backbone)
    return f"{backbone} ({PARADIGM_NAMES[paradigm]})" if paradigm in PARADIGM_NAMES else backbone


# --- (a) Table 1 cell by cell, and low final similarity --------------------------------------------------------
CELL = ["dataset", "backbone", "method", "pool"]


def common_seeds(rows: pl.DataFrame) -> tuple[pl.DataFrame, list[int]]:
    """The rows of the seeds every cell has, so that no cell is a mean of more runs than another (the similarity
    grid's extra seeds of one cell are left out); all rows when the cells share no seed."""
    per_cell = rows.group_by(CELL).agg(pl.col("seed").unique())["seed"].to_list()
    shared = sorted(set.intersection(*map(set, per_cell))) if per_cell else []
    return (rows.filter(pl.col("seed").is_in(shared)), shared) if shared else (rows, [])


def _seed_text(seeds: list[int]) -> str:
    if not seeds:
        return "cells share no seed: all seeds averaged"
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"


def _cell_means(runs: pl.DataFrame, metric: str) -> tuple[pl.DataFrame, list[int]]:
    rows, seeds = common_seeds(runs.filter(pl.col("metric") == metric))
    # Sorted before the mean: a group's rows come in no fixed order, and float sums depend on it.
    return rows.group_by(CELL).agg(value=pl.col("value").sort().mean()), seeds


def _wins_part(label: str, pairs: pl.DataFrame, confidence: float, suffix: str = "") -> Part:
    """Share of cells where `winner` > `loser` (columns of `pairs`), its exact CI, judged against one half."""
    cells = pairs.height
    wins = int((pairs["winner"] > pairs["loser"]).sum())
    lo, hi = share_ci(wins, cells, confidence)
    if cells == 0:
        return Part(label, "no cells with both methods in this study", INCONCLUSIVE)
    return Part(
        label, f"{wins} of {cells} cells ({_ci(lo, hi, 2)} for the share won){suffix}", band_verdict(lo, hi, 0.5)
    )


def table1_claim(
    runs: pl.DataFrame,
    grid: pl.DataFrame,
    similarity: str,
    layer: int,
    samples: str,
    paradigms: dict[str, str],
    confidence: float,
) -> Claim:
    cells, seeds = _cell_means(runs, "score")
    keys = ["dataset", "backbone", "pool"]

    def method(name: str, column: str) -> pl.DataFrame:
        return cells.filter(pl.col("method") == name).select(*keys, pl.col("value").alias(column))

    full_linear = method("full", "winner").join(method("linear", "loser"), on=keys)
    scratch = method("scratch", "loser")
    over_scratch = pl.concat([method(m, "winner").join(scratch, on=keys) for m in ("full", "linear")])
    claim = Claim(
        "a",
        "Pre-trained fine-tuning succeeds while similarity to the pre-trained model degrades",
        "Training from scratch consistently underperforms fine-tuning, and Full fine-tuning outperforms Linear "
        f"(Table 1; stated in general: {PAPER_TABLE1}); yet the fine-tuned models keep little similarity to their "
        "pre-trained origin: final CKA below 0.4 for ViT and OpenCLIP and below 0.45 for DINOv2 (Sec. 3.3, Fig. 4b).",
        "Cells of Table 1 (dataset x backbone x pool, score = accuracy or mAP) are compared within the cell only, on "
        "the seeds every cell has; a comparison agrees when the exact CI of the share of cells won lies above one "
        "half (by this rule the paper's own 10 of 15 would be inconclusive). Final similarity: mean over the "
        "similarity grid's seeds with a t CI, agreeing when the CI lies below the paper's level for the paradigm.",
    )
    suffix = f"; {_seed_text(seeds)}"
    claim.parts.append(_wins_part("Full beats Linear", full_linear, confidence, suffix))
    claim.parts.append(_wins_part("Full and Linear beat Scratch (same architecture)", over_scratch, confidence, suffix))
    final = grid.filter((pl.col("metric") == similarity) & (pl.col("layer") == layer))
    other = "cka_debiased" if similarity == "cka" else "cka"
    other_final = grid.filter((pl.col("metric") == other) & (pl.col("layer") == layer))
    for backbone in sorted(final["backbone"].unique()):
        paradigm = paradigms.get(backbone)
        mean, lo, hi, n = mean_ci(final.filter(pl.col("backbone") == backbone)["value"], confidence)
        measured = f"{mean:.3f} ({_ci(lo, hi)}, {n} seeds, {samples})"
        other_mean = other_final.filter(pl.col("backbone") == backbone)["value"].mean()
        if other_mean is not None:
            measured += f"; the {ESTIMATORS[other]} estimator gives {other_mean:.3f}"
        level = LOW_SIMILARITY.get(paradigm)
        if level is None:
            claim.parts.append(
                Part(f"{backbone}: final similarity", measured + "; no paper level for this paradigm", INCONCLUSIVE)
            )
            continue
        claim.parts.append(
            Part(
                f"{_name(backbone, paradigms)}: final similarity below {level}",
                measured,
                band_verdict(lo, hi, high=level),
            )
        )
    return claim


# --- (b) the trajectory's shape --------------------------------------------------------------------------------
def trajectory_shape(values: np.ndarray) -> tuple[float, float]:
    """For one run's similarity per epoch (epoch 0 = before fine-tuning): (first-epoch drop minus the mean absolute
    per-epoch change after it, least-squares slope over the second half, epochs >= E / 2)."""
    steps = np.abs(np.diff(values[1:]))
    sharp = (values[0] - values[1]) - (steps.mean() if steps.size else 0.0)
    epochs = np.arange(values.size)
    late = epochs >= (values.size - 1) / 2
    slope = np.polyfit(epochs[late], values[late], 1)[0] if late.sum() >= 2 else math.nan
    return float(sharp), float(slope)


def trajectory_claim(
    trajectories: pl.DataFrame, similarity: str, layer: int, paradigms: dict[str, str], confidence: float
) -> Claim:
    claim = Claim(
        "b",
        "Similarity drops sharply, then supervised models keep decaying while self-supervised ones recover",
        "Over 20 epochs the similarity first declines sharply, then changes gradually: supervised models keep "
        "decaying while unsupervised ones (OpenCLIP, DINOv2) recover (Sec. 3.3, Fig. 4a).",
        "Per run of the similarity grid: the first epoch's drop minus the mean absolute change per epoch after it "
        "(sharp first drop: > 0), and the least-squares slope of the second half of the trajectory, epochs >= E/2 "
        "(supervised: < 0, OpenCLIP and DINOv2: > 0); means over seeds with t CIs.",
    )
    data = trajectories.filter((pl.col("metric") == similarity) & (pl.col("layer") == layer)).sort("run", "epoch")
    for backbone in sorted(data["backbone"].unique()):
        shapes = [
            trajectory_shape(group["value"].to_numpy())
            for _, group in data.filter(pl.col("backbone") == backbone).group_by("run", maintain_order=True)
        ]
        if not shapes or len(data.filter(pl.col("backbone") == backbone)["epoch"].unique()) < 3:
            claim.parts.append(
                Part(f"{backbone}: trajectory", "fewer than 2 epochs of fine-tuning: no shape", INCONCLUSIVE)
            )
            continue
        sharp, slope = np.array(shapes).T
        mean, lo, hi, n = mean_ci(sharp, confidence)
        name = _name(backbone, paradigms)
        claim.parts.append(
            Part(
                f"{name}: sharp first drop", f"{mean:+.4f} ({_ci(lo, hi, 4)}, {n} seeds)", band_verdict(lo, hi, low=0.0)
            )
        )
        mean, lo, hi, n = mean_ci(slope, confidence)
        measured = f"slope {mean:+.5f} per epoch ({_ci(lo, hi, 5)}, {n} seeds)"
        if paradigms.get(backbone) == "supervised":
            claim.parts.append(Part(f"{name}: keeps decaying", measured, band_verdict(lo, hi, high=0.0)))
        elif paradigms.get(backbone) in ("clip", "self_supervised"):
            claim.parts.append(Part(f"{name}: recovers", measured, band_verdict(lo, hi, low=0.0)))
    return claim


# --- (c) Table 2: forgetting -------------------------------------------------------------------------------------
def forgetting_claim(
    runs: pl.DataFrame, pretrained: pl.DataFrame, k: int, paradigms: dict[str, str], confidence: float
) -> Claim:
    metric = f"knn@{k}"
    claim = Claim(
        "c",
        "Supervised pre-training forgets less on the natural domain",
        "Supervised pre-trained models resist forgetting better, while unsupervised ones (OpenCLIP, DINOv2) forget "
        "severely: their k-NN accuracy on ImageNet after fine-tuning falls much further (Sec. 3.2, Table 2).",
        f"Per cell of Table 2 (fine-tuning dataset x pool, Full runs, the seeds every cell has): the drop in k-NN "
        f"accuracy (k = {k}, ImageNet or its stand-in) from the pre-trained model, in points. Against each other "
        "backbone, the other's drop minus the supervised one's, cell by cell on the seeds every cell has (all in "
        "k-NN accuracy points, each cell once, cells taken as independent); agrees when the t CI of its mean over "
        "cells lies above 0.",
    )
    before = pretrained.filter(pl.col("metric") == metric).select("backbone", "pool", pre="value")
    cells, seeds = _cell_means(runs.filter(pl.col("method") == "full"), metric)
    drops = cells.join(before, on=["backbone", "pool"]).with_columns(drop=pl.col("pre") - pl.col("value"))
    supervised = [b for b in sorted(drops["backbone"].unique()) if paradigms.get(b) == "supervised"]
    others = [b for b in sorted(drops["backbone"].unique()) if paradigms.get(b) in ("clip", "self_supervised")]
    if not supervised or not others:
        claim.parts.append(
            Part(
                "supervised vs unsupervised",
                "the study needs a supervised and an unsupervised backbone with Full runs",
                INCONCLUSIVE,
            )
        )
    for sup in supervised:
        for other in others:
            pairs = (
                drops.filter(pl.col("backbone") == sup)
                .select("dataset", "pool", sup="drop")
                .join(
                    drops.filter(pl.col("backbone") == other).select("dataset", "pool", other="drop"),
                    on=["dataset", "pool"],
                )
            )
            label = f"{_name(sup, paradigms)} forgets less than {_name(other, paradigms)}"
            if pairs.height == 0:
                claim.parts.append(Part(label, "no cell with Full runs of both", INCONCLUSIVE))
                continue
            gap = 100 * (pairs["other"] - pairs["sup"]).to_numpy()
            mean, lo, hi, n_cells = mean_ci(gap, confidence)
            wins = int((gap > 0).sum())
            measured = (
                f"drop {100 * pairs['sup'].mean():.2f} vs {100 * pairs['other'].mean():.2f} points (mean over "
                f"cells); difference {mean:+.2f} points ({_ci(lo, hi, 2)}, {n_cells} cells, {wins} won; "
                f"{_seed_text(seeds)})"
            )
            claim.parts.append(Part(label, measured, band_verdict(lo, hi, low=0.0)))
    return claim


# --- (d) Fig. 5 --------------------------------------------------------------------------------------------------
def _stronger(a: np.ndarray, b: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """Median and percentile CI of |r_a| - |r_b| over bootstrap replicates (pairs where both are defined); NaN
    when a side has no replicates (its line could not be fitted: too few distinct similarity levels)."""
    if a.size == 0 or b.size == 0:
        return math.nan, math.nan, math.nan
    if a.size != b.size:
        raise ValueError(f"bootstrap replicates differ in number: {a.size} and {b.size}")
    both = np.isfinite(a) & np.isfinite(b)
    if both.sum() < 10:
        return math.nan, math.nan, math.nan
    gap = np.abs(a[both]) - np.abs(b[both])
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(gap, [tail, 100 - tail])
    return float(np.median(gap)), float(lo), float(hi)


def correlation_claim(
    fits: pl.DataFrame, bootstrap: pl.DataFrame, layer: int, k: int, paradigms: dict[str, str], confidence: float
) -> Claim:
    claim = Claim(
        "d",
        "Similarity predicts forgetting and calibration most for supervised pre-training",
        "On the ISIC 2018 runs, interval means of CKA and of k-NN accuracy, and of CKA and ECE, both on ImageNet, "
        "show a clear linear relation for supervised ViT; OpenCLIP shows little correlation with k-NN but a "
        "moderate one with ECE; DINOv2 negligible correlation with both (Sec. 3.3, Fig. 5).",
        "The interval fit of Fig. 5 on the similarity grid's runs (results/analysis/correlation.csv). The paper "
        "gives no numbers for its words, so they are judged as the order they imply (strong > moderate > little > "
        "negligible): each pair the words rank is compared by |r| (the sign is shown, not judged), agreeing when "
        "the bootstrap CI of the difference of |r| lies above 0. ViT's relation is clear when its r's CI excludes "
        "0 (otherwise inconclusive: no number says how weak a relation may be and still be clear).",
    )
    rows = fits.filter(pl.col("layer") == layer)
    boot = bootstrap.filter(pl.col("layer") == layer)
    metrics = (f"knn@{k}", f"knn_ece@{k}")
    words = {}  # (backbone, metric) -> the paper's word
    for backbone, paradigm in sorted(paradigms.items()):
        if paradigm in PAPER_STRENGTH and rows.filter(pl.col("backbone") == backbone).height:
            words |= {(backbone, m): w for m, w in zip(metrics, PAPER_STRENGTH[paradigm])}

    def fit_text(backbone: str, metric: str) -> str:
        fit = rows.filter((pl.col("backbone") == backbone) & (pl.col("metric") == metric))
        if fit.height == 0 or fit["r"][0] is None:
            return f"{backbone} {metric}: not fitted ({fit['note'][0] if fit.height else 'no fit'})"
        return (
            f"{backbone} {metric}: r = {fit['r'][0]:+.2f} ({_ci(fit['r_lo'][0], fit['r_hi'][0], 2)}, "
            f"{fit['runs'][0]} runs)"
        )

    def replicates(backbone: str, metric: str) -> np.ndarray:
        mine = boot.filter((pl.col("backbone") == backbone) & (pl.col("metric") == metric)).sort("replicate")
        return mine["r"].to_numpy()

    for backbone in [b for b, p in sorted(paradigms.items()) if p == "supervised"]:
        for metric in metrics:
            fit = rows.filter((pl.col("backbone") == backbone) & (pl.col("metric") == metric))
            if (backbone, metric) not in words:
                continue
            lo, hi = (fit["r_lo"][0], fit["r_hi"][0]) if fit.height and fit["r"][0] is not None else (None, None)
            clear = AGREES if lo is not None and (lo > 0 or hi < 0) else INCONCLUSIVE
            claim.parts.append(
                Part(f"{_name(backbone, paradigms)}: a clear relation with {metric}", fit_text(backbone, metric), clear)
            )
    pairs = [
        ((a, m), (b, m))
        for m in metrics
        for a in sorted(paradigms)
        for b in sorted(paradigms)
        if (a, m) in words and (b, m) in words and STRENGTH_ORDER[words[a, m]] > STRENGTH_ORDER[words[b, m]]
    ]
    first, second = metrics[0], metrics[1]
    pairs += [
        ((a, second), (a, first))
        for a in sorted(paradigms)
        if (a, first) in words and STRENGTH_ORDER[words[a, second]] > STRENGTH_ORDER[words[a, first]]
    ]
    for (a, ma), (b, mb) in pairs:
        label = (
            f"|r| {_name(a, paradigms)} with {ma} ({words[a, ma]}) > {_name(b, paradigms)} with {mb} ({words[b, mb]})"
        )
        median, lo, hi = _stronger(replicates(a, ma), replicates(b, mb), confidence)
        measured = f"{fit_text(a, ma)}; {fit_text(b, mb)}; difference of |r| {median:+.2f} ({_ci(lo, hi, 2)})"
        claim.parts.append(Part(label, measured, band_verdict(lo, hi, low=0.0)))
    return claim


# --- the page --------------------------------------------------------------------------------------------------
def findings(
    runs: pl.DataFrame,
    trajectories: pl.DataFrame,
    pretrained: pl.DataFrame,
    grids: pl.DataFrame,
    fits: pl.DataFrame,
    bootstrap: pl.DataFrame,
    *,
    grid: str,
    layer: int | str,
    similarity: str,
    k: int,
    paradigms: dict[str, str],
    confidence: float = 0.95,
) -> tuple[list[Claim], dict]:
    """Every claim with its parts and verdicts, plus the facts of the study the page states at its top."""
    layer = resolve_layer(runs, layer)
    selected = grid_runs(runs, grids, grid)
    grid_samples = cka_sample_sizes(selected)
    estimator = "biased (the paper's Eq. 1)" if similarity == "cka" else "debiased (U-statistic)"
    n_text = f"n = {', '.join(map(str, grid_samples))} test images"
    facts = dict(
        grid=grid,
        layer=layer_name(layer, resolve_layer(runs, "final")),
        estimator=estimator,
        samples=n_text,
        confidence=confidence,
        k=k,
        runs_per_backbone=dict(
            selected.group_by("backbone").agg(pl.col("run").n_unique()).sort("backbone").iter_rows()
        ),
        study_runs=runs["run"].n_unique(),
        missing=missing_runs(grids),
    )
    claims = [
        table1_claim(runs, selected, similarity, layer, n_text, paradigms, confidence),
        trajectory_claim(grid_runs(trajectories, grids, grid), similarity, layer, paradigms, confidence),
        forgetting_claim(runs, pretrained, k, paradigms, confidence),
        correlation_claim(fits, bootstrap, layer, k, paradigms, confidence),
    ]
    return claims, facts


def missing_runs(grids: pl.DataFrame) -> dict[str, str]:
    """The study's runs that failed (run: message, from grids.parquet): every verdict is taken without them."""
    failed = grids.filter(pl.col("failure").is_not_null()).unique("run").sort("run")
    return dict(zip(failed["run"], failed["failure"]))


def findings_table(claims: list[Claim]) -> pl.DataFrame:
    """One row per part: what the CSV beside the page holds."""
    rows = [
        dict(claim=c.key, claim_verdict=c.verdict, part=p.label, measured=p.measured, verdict=p.verdict)
        for c in claims
        for p in c.parts
    ]
    return pl.DataFrame(
        rows,
        schema={"claim": pl.Utf8, "claim_verdict": pl.Utf8, "part": pl.Utf8, "measured": pl.Utf8, "verdict": pl.Utf8},
    )


STYLE = """body{font-family:sans-serif;max-width:1200px;margin:1em auto;line-height:1.4}
table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:6px;vertical-align:top;text-align:left}
.agrees{background:#dff3df}.disagrees{background:#f8dcdc}.inconclusive{background:#eee}
td ul{margin:0;padding-left:1.1em}small{color:#555}"""


def write_findings_page(
    claims: list[Claim], facts: dict, path: str | Path, beyond: list[str] = (), rulers: list[dict] = ()
) -> None:
    """The page; `beyond` holds the verdict lines of the similarity-preserving methods (repdrift.tradeoff), `rulers`
    the paper's correlation conclusion under each similarity measure (repdrift.rulers, rulers_conclusion.csv)."""
    e = html.escape
    runs = ", ".join(f"{b} {n}" for b, n in facts["runs_per_backbone"].items())
    head = (
        f"<h2>Findings: the paper's claims beside this study</h2><p>Zu et al. 2025 (arXiv 2503.07958) against "
        f"this study's {facts['study_runs']} runs. Similarity: linear CKA, {e(facts['estimator'])} estimator, "
        f"{e(facts['layer'])}, on {e(facts['samples'])} per run of the similarity grid "
        f"<code>{e(facts['grid'])}</code> (runs per backbone: {e(runs)}). k-NN: k = {facts['k']}. "
        f"Confidence intervals at {facts['confidence']:.0%}.</p>"
    )
    if facts["missing"]:
        items = "".join(f"<li><code>{e(run)}</code>: {e(message)}</li>" for run, message in facts["missing"].items())
        count = len(facts["missing"])
        head += (
            f"<div class='disagrees'><b>{count} run{'s' if count > 1 else ''} of the study "
            f"{'are' if count > 1 else 'is'} missing</b>: failed, "
            f"and every table, figure and verdict is taken without them. Fix the cause and run Snakemake again "
            f"(a run is retried when its backbone or <code>train</code> config changes, or when its "
            f"<code>failed.json</code> is deleted).<ul>{items}</ul></div>"
        )
    rows = []
    for claim in claims:
        parts = "".join(
            f"<li class='{p.verdict}'><b>{e(p.label)}</b>: {e(p.measured)} &rarr; <i>{p.verdict}</i></li>"
            for p in claim.parts
        )
        rows.append(
            f"<tr><td><b>({claim.key}) {e(claim.title)}</b></td><td>{e(claim.paper)}</td>"
            f"<td><ul>{parts}</ul><small>Rule: {e(claim.rule)}</small></td>"
            f"<td class='{claim.verdict}'><b>{claim.verdict}</b></td></tr>"
        )
    rule = (
        "<p><small>Verdicts: a part agrees when its confidence interval lies inside the band the paper's claim "
        "puts it in, disagrees when the interval lies outside it, and is inconclusive when the interval spans "
        "an edge (or there are too few runs for one). A claim agrees when all its parts agree, disagrees when "
        "any part disagrees, and is inconclusive otherwise. See <code>repdrift.findings</code>.</small></p>"
    )
    table = (
        "<table><tr><th>claim</th><th>the paper says</th><th>this study measures</th><th>verdict</th></tr>"
        + "".join(rows)
        + "</table>"
    )
    rule += (
        "<h3>Claims of the paper this page does not judge</h3><ul>"
        + "".join(f"<li>{e(line)}</li>" for line in NOT_JUDGED)
        + "</ul>"
    )
    if rulers:

        def ruler_line(r: dict) -> str:
            if r.get("supervised") is None:
                return "no supervised and self-supervised backbone pair with valid correlations"
            return (
                f"|r| {e(r['supervised'])} minus {e(r['self_supervised'])} = {r['difference']:+.2f} "
                f"({_ci(r['lo'], r['hi'], 2)})"
            )

        items = "".join(
            f"<li class='{r['verdict']}'><b>{e(r['measure'])}</b>: {ruler_line(r)} &rarr; <i>{r['verdict']}</i></li>"
            for r in rulers
        )
        rule += (
            "<h3>Under other rulers</h3><p>A simpler form of claim (d) with each similarity measure in place of CKA: "
            "does forgetting track similarity more for the supervised ViT than for DINOv2? The bootstrap CI of the "
            "difference of |Spearman r| with k-NN forgetting over the similarity grid's runs "
            "(results/analysis/rulers.csv; claim (d) itself also asks for a clear ViT relation, uses the interval "
            f"fit and ECE, and orders OpenCLIP): agrees above 0, disagrees below.</p><ul>{items}</ul>"
        )
    if beyond:
        rule += (
            "<h3>Beyond the paper: similarity-preserving fine-tuning</h3><p>The paper's open question is a model with "
            "both high similarity and accuracy. Its companion work (Zu et al. 2025, arXiv 2503.07399) reports over "
            "30 % higher similarity at competitive accuracy; per cell of the preserving grid, the method with the "
            "largest gain over Full within 1 point of its score (results/analysis/tradeoff.csv):</p><ul>"
            + "".join(f"<li>{e(line)}</li>" for line in beyond)
            + "</ul>"
        )
    Path(path).write_text(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Findings</title>"
        f"<style>{STYLE}</style></head><body>{head}{table}{rule}</body></html>\n"
    )
