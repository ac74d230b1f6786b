"""The findings page: each claim of the paper (Zu et al. 2025) beside what this study measures, with a verdict.

A claim is split into parts, each a number with a confidence interval (CI) and a band the paper's words put it in:
a part *agrees* when its CI lies inside the band, *disagrees* when its CI lies outside it, and is *inconclusive*
when the CI spans the band's edge (or cannot be formed). A claim agrees when all its parts agree, disagrees when
any part disagrees, and is inconclusive otherwise. The bands are the paper's own numbers where it gives them (0.4,
0.45), the sign of a difference or a slope, or one half for a share of cells won ("beats" = wins more often than
not). Where the paper words a strength without a number ("clear", "moderate", "little", "negligible" correlation),
the claim is judged as the ordering those words imply (clear > moderate > little = negligible), never against a
threshold.

Seeds are never mixed: a claim over cells of Table 1 or 2 (dataset x backbone x method x pool) reads its runs on
the common seeds (`seed_plan`: the seeds the config gives the most cells, every cell when the grids are nested, as
the paper's are) and drops, by name, every cell without a finished run of each of them (a failed run, or a cell the
config gave other seeds). A run whose score is at or below its dataset's majority-class baseline (grids.parquet
`at_baseline`) is named in every part that reads it. Intervals of bounded quantities are clipped to their range.

(a) Sec. 3.1 / Table 1 and Sec. 3.3 / Fig. 4b: pre-trained fine-tuning beats Linear cell by cell (share of cells
    won, exact Clopper-Pearson CI treating cells as independent); Scratch consistently underperforms: per cell,
    Scratch below every pre-trained partner (Full, Linear) of its cell, one unit per cell; while final similarity
    stays low: the biased estimator (the paper's Eq. 1, in which its levels are given) over the similarity grid's
    seeds, t CI; ViT and OpenCLIP < 0.4, DINOv2 < 0.45; inconclusive when the two estimators' means fall on
    opposite sides of the level (in practice it can only keep a level from agreeing, as the debiased value lies
    below the biased one). The paper gives no n: the study assumes ISIC 2018's whole test split.
(b) Sec. 3.3 / Fig. 4a: similarity drops sharply first: the mean decline per epoch over the first
    ceil(warm-up) + 1 epochs (the warm-up and the first epoch at the full learning rate, where the drop happens)
    minus the mean absolute change per epoch after that window, > 0; then supervised models keep decaying (slope of
    the trajectory's second half < 0) while self-supervised ones recover (> 0); t CIs over seeds.
(c) Sec. 3.2 / Table 2: supervised pre-training forgets less on the natural domain: its k-NN drop from the
    pre-trained model is smaller than each other backbone's (the cell-by-cell difference of drops, dataset x
    pool, Full runs, in k-NN accuracy points, t CI of its mean over cells > 0).
(d) Sec. 3.3 / Fig. 5: on the similarity grid, the interval fit of CKA vs k-NN and vs natural-domain ECE. The
    expected sign with k-NN accuracy follows the paper's argument that similarity is the pre-trained model kept:
    r > 0 (more similar, less forgetting). With ECE the paper implies none ("a similar trend is observed for ECE":
    a clear relation, direction unsaid): its sign is shown, not required. ViT's relation is "clear" when r's CI
    lies on the expected side of 0 (disagrees on the other side; for ECE, either side agrees). The paper's words
    order the strengths (ViT clear above OpenCLIP, little with k-NN, moderate with ECE, and DINOv2, negligible;
    OpenCLIP's ECE above its k-NN; little and negligible are one level): the stronger relation counts in its
    expected direction (+r for k-NN, so a wrong-signed r is never strong; |r| for ECE), the weaker one by |r|
    (over few interval means |r| is biased upward, which makes a stronger-than harder to show); bootstrap CI of
    the difference > 0. Comparing two backbones' relations with one metric whose signs are both certain (CIs
    exclude 0) and differ is inconclusive, as is any part that reads a fit with too few intervals or a mostly
    degenerate bootstrap (repdrift.analysis.paper).
(e) Sec. 3.1 / Table 1: the supervised ViT reaches higher accuracy than OpenCLIP and than DINOv2 (cells of dataset
    x method x pool, Full and Linear, share won); DINOv2 does better with mean-patch pooling and ViT and OpenCLIP
    with the CLS token (cells of dataset x method with both pools, share won, on the common seeds).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from scipy import stats

from repdrift.analysis.paper import (
    ESTIMATORS,
    cka_sample_sizes,
    grid_runs,
    layer_name,
    mean_ci,
    resolve_layer,
    value_range,
)
from repdrift.study import PAPER_METHODS, knn_ece_metric, knn_metric

AGREES, DISAGREES, INCONCLUSIVE = "agrees", "disagrees", "inconclusive"
PARADIGM_NAMES = {"supervised": "supervised ViT", "clip": "OpenCLIP", "self_supervised": "DINOv2"}
# The paper's final-similarity levels (Sec. 3.3): "VIT, OPENCLIP < 0.4; DINOv2 < 0.45", values of its Eq. 1.
LOW_SIMILARITY = {"supervised": 0.4, "clip": 0.4, "self_supervised": 0.45}
PAPER_ESTIMATOR = "cka"
# Sec. 3.3, Fig. 5: the strength of CKA vs (k-NN, ECE) per paradigm, and the order of the words.
PAPER_STRENGTH = {
    "supervised": ("clear", "clear"),
    "clip": ("little", "moderate"),
    "self_supervised": ("negligible", "negligible"),
}
# "Little" and "negligible" are one level: the paper sets both against ViT's, not against each other.
STRENGTH_ORDER = {"negligible": 0, "little": 0, "moderate": 1, "clear": 2}
# The sign of r the paper's argument implies (module docstring, (d)), by the metric's name before "@": k-NN accuracy
# rises with similarity (less forgetting). ECE has none: the paper's "a similar trend is observed for ECE" says the
# interval means of ECE show a clear relation too, not in which direction, and the k-NN vote's ECE has no known one.
EXPECTED_SIGN = {"knn": 1}
# Sec. 3.1: the pool each paradigm does better with.
PAPER_POOL = {"supervised": "cls", "clip": "cls", "self_supervised": "mean"}
# The paper's own Table 1 (CLS values), counted the way claim (a) counts cells.
PAPER_TABLE1 = "its own Table 1 has Full above Linear in 10 of 15 cells and Scratch below both in 5 of 5"
NOT_JUDGED = [
    "Sec. 3.2: forgetting is largest after fine-tuning on the most complex dataset (MedFM-Chest), and varies only "
    "slightly across datasets and models; unsupervised models forget 'severely' (a magnitude; (c) judges the "
    "order only) (see Table 2).",
    "Sec. 3.2: pre-trained models perform well on ImageNet-1K classification (Table 2's pre-trained column).",
    "Sec. 3.3 / Fig. 5: individual runs' similarity and k-NN scores vary widely (see the run-level Spearman r in "
    "results/analysis/correlation.csv and the figure's black points).",
    "Fig. 5's ECE read as the fine-tuned classifier's ECE on its own test set rather than the k-NN vote's on the "
    "natural domain: fitted as the figure's third panel (metric ece in correlation.csv), not judged.",
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


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# --- seeds and cells -------------------------------------------------------------------------------------------
CELL = ["dataset", "backbone", "method", "pool"]


@dataclass
class SeedPlan:
    """The runs a claim over cells reads: `rows` on the common `seeds`, without the `dropped` cells (each with why)."""

    rows: pl.DataFrame
    seeds: list[int]
    dropped: dict[str, str]

    def text(self) -> str:
        if not self.seeds:
            return "no seed common to the cells"
        seeds = f"seed{'s' if len(self.seeds) > 1 else ''} {', '.join(map(str, self.seeds))}"
        if self.dropped:
            seeds += f"; {_plural(len(self.dropped), 'cell')} dropped: " + "; ".join(
                f"{cell} ({why})" for cell, why in self.dropped.items()
            )
        return seeds


def _cell_name(row: dict) -> str:
    return "/".join(str(row[k]) for k in CELL)


def seed_plan(rows: pl.DataFrame, configured: pl.DataFrame) -> SeedPlan:
    """Restrict `rows` (runs.parquet rows of a claim's runs) to the seeds the config gives the most cells of
    `configured` (grids.parquet rows of the same runs, failed ones included), and drop every cell that lacks a
    finished run of one of them. Never falls back to mixing seeds."""
    asked = configured.select(*CELL, "seed").unique()
    if asked.height == 0:
        return SeedPlan(rows.clear(), [], {})
    counts = asked.group_by("seed").len()
    seeds = sorted(counts.filter(pl.col("len") == counts["len"].max())["seed"].to_list())
    done = rows.select(*CELL, "seed").unique().filter(pl.col("seed").is_in(seeds))
    have = done.group_by(CELL).agg(pl.col("seed").n_unique().alias("n"))
    cells = asked.select(CELL).unique().join(have, on=CELL, how="left").sort(CELL)
    dropped = {}
    for cell in cells.filter(pl.col("n").fill_null(0) < len(seeds)).iter_rows(named=True):
        mine = asked.join(pl.DataFrame([cell]).select(CELL), on=CELL)["seed"].to_list()
        missing = [s for s in seeds if s not in mine]
        dropped[_cell_name(cell)] = (
            f"not run with seed {', '.join(map(str, missing))}" if missing else "a run of the common seeds failed"
        )
    kept = cells.filter(pl.col("n").fill_null(0) == len(seeds)).select(CELL)
    return SeedPlan(rows.join(kept, on=CELL).filter(pl.col("seed").is_in(seeds)), seeds, dropped)


def _cell_means(plan: SeedPlan, metric: str) -> pl.DataFrame:
    rows = plan.rows.filter(pl.col("metric") == metric)
    # Sorted before the mean: a group's rows come in no fixed order, and float sums depend on it.
    return rows.group_by(CELL).agg(value=pl.col("value").sort().mean())


def degenerate_runs(grids: pl.DataFrame) -> dict[str, str]:
    """The runs at or below their dataset's majority-class baseline (grids.parquet), with their score and it."""
    if "at_baseline" not in grids.columns:
        return {}
    rows = grids.filter(pl.col("at_baseline").fill_null(False)).unique("run").sort("run")
    return {
        r["run"]: f"{100 * r['score']:.2f} against {100 * r['majority']:.2f} for always the majority class "
        f"(chance {100 * r['chance']:.2f})"
        for r in rows.iter_rows(named=True)
    }


def _baseline_text(runs: pl.DataFrame, degenerate: dict[str, str]) -> str:
    """What a part says of the degenerate runs it reads."""
    named = sorted(set(runs["run"]) & set(degenerate))
    if not named:
        return ""
    return f"; at or below the majority baseline (degenerate): {', '.join(named)}"


# --- (a) Table 1 cell by cell, and low final similarity --------------------------------------------------------
def _wins_part(label: str, pairs: pl.DataFrame, confidence: float, suffix: str = "") -> Part:
    """Share of cells where `winner` > `loser` (columns of `pairs`), its exact CI, judged against one half."""
    cells = pairs.height
    wins = int((pairs["winner"] > pairs["loser"]).sum())
    lo, hi = share_ci(wins, cells, confidence)
    if cells == 0:
        return Part(label, f"no cells with both in this study{suffix}", INCONCLUSIVE)
    return Part(
        label, f"{wins} of {cells} cells ({_ci(lo, hi, 2)} for the share won){suffix}", band_verdict(lo, hi, 0.5)
    )


def _method(cells: pl.DataFrame, name: str, column: str, keys: list[str]) -> pl.DataFrame:
    return cells.filter(pl.col("method") == name).select(*keys, pl.col("value").alias(column))


def scratch_part(cells: pl.DataFrame, confidence: float, suffix: str) -> Part:
    """Scratch below every pre-trained partner (Full, Linear) of its cell, one unit per cell: the two comparisons of
    a cell share one Scratch value and are not independent. "Consistently" (this study's reading): every cell won,
    and enough cells that the exact CI of the share lies above one half; disagrees when the CI lies below it."""
    keys = ["dataset", "backbone", "pool"]
    scratch = _method(cells, "scratch", "scratch", keys)
    partners = cells.filter(pl.col("method").is_in(["full", "linear"])).group_by(keys).agg(best=pl.col("value").min())
    pairs = scratch.join(partners, on=keys)
    label = "Scratch below every pre-trained partner of its cell, in every cell"
    if pairs.height == 0:
        return Part(label, f"no cell with Scratch and a pre-trained partner{suffix}", INCONCLUSIVE)
    wins = int((pairs["scratch"] < pairs["best"]).sum())
    lo, hi = share_ci(wins, pairs.height, confidence)
    verdict = band_verdict(lo, hi, 0.5)
    if verdict == AGREES and wins < pairs.height:
        verdict = INCONCLUSIVE  # more often than not, but not consistently
    return Part(label, f"{wins} of {pairs.height} cells ({_ci(lo, hi, 2)} for the share won){suffix}", verdict)


def level_part(grid: pl.DataFrame, backbone: str, layer: int, samples: str, paradigms, confidence: float) -> Part:
    """Final similarity below the paper's level, judged with the paper's estimator (biased, its Eq. 1); the other
    estimator's mean beside it, inconclusive when the two fall on opposite sides of the level."""
    paradigm = paradigms.get(backbone)
    here = (pl.col("backbone") == backbone) & (pl.col("layer") == layer)
    values = {m: grid.filter(here & (pl.col("metric") == m))["value"] for m in ESTIMATORS}
    mean, lo, hi, n = mean_ci(values[PAPER_ESTIMATOR], confidence, value_range(PAPER_ESTIMATOR))
    measured = f"{ESTIMATORS[PAPER_ESTIMATOR]} {mean:.3f} ({_ci(lo, hi)}, {_plural(n, 'seed')}, {samples})"
    level = LOW_SIMILARITY.get(paradigm)
    if level is not None and n:
        below = int((values[PAPER_ESTIMATOR] < level).sum())
        measured += f"; {below} of {_plural(n, 'run')} below {level}"
    other = values["cka_debiased"]
    other_mean = other.mean() if other.len() else None
    if other_mean is not None:
        measured += f"; the {ESTIMATORS['cka_debiased']} estimator gives {other_mean:.3f}"
    if level is None:
        return Part(f"{backbone}: final similarity", measured + "; no paper level for this paradigm", INCONCLUSIVE)
    verdict = band_verdict(lo, hi, high=level)
    if other_mean is not None and n and (mean < level) != (other_mean < level):
        measured += f": the estimators fall on opposite sides of {level}"
        verdict = INCONCLUSIVE
    return Part(f"{_name(backbone, paradigms)}: final similarity below {level}", measured, verdict)


def table1_claim(
    runs: pl.DataFrame,
    configured: pl.DataFrame,
    grid: pl.DataFrame,
    layer: int,
    samples: str,
    paradigms: dict[str, str],
    confidence: float,
    degenerate: dict[str, str],
) -> Claim:
    plan = seed_plan(runs.filter(pl.col("method").is_in(PAPER_METHODS)), configured)
    cells = _cell_means(plan, "score")
    keys = ["dataset", "backbone", "pool"]
    full_linear = _method(cells, "full", "winner", keys).join(_method(cells, "linear", "loser", keys), on=keys)
    claim = Claim(
        "a",
        "Pre-trained fine-tuning succeeds while similarity to the pre-trained model degrades",
        "Training from scratch consistently underperforms fine-tuning, and Full fine-tuning outperforms Linear "
        f"(Table 1; stated in general: {PAPER_TABLE1}); yet the fine-tuned models keep little similarity to their "
        "pre-trained origin: final CKA below 0.4 for ViT and OpenCLIP and below 0.45 for DINOv2 (Sec. 3.3, Fig. 4b).",
        "Cells of Table 1 (dataset x backbone x pool, score = accuracy or mAP; a CLS and a mean-pool cell count as "
        "two, taken as independent) are compared within the cell only, on the common seeds; Full beats Linear when "
        "the exact CI of the share of cells won lies above one half (by this rule the paper's own 10 of 15 CLS cells "
        "would be inconclusive). Scratch, one unit per cell: below every pre-trained partner of its own architecture "
        "and pool (Full and Linear share one Scratch value, so they are not two units); a Scratch run of a backbone "
        "is not compared with other backbones. 'Consistently' is this study's reading: every cell won and the CI of "
        "the share above one half (the paper's 5 of 5 would be inconclusive); disagrees when the CI lies below one "
        "half. Final similarity: the biased estimator, the paper's Eq. 1, in which it gives its levels (for ISIC "
        "2018 runs; it does not give n or the images, and the biased value rises as n falls: this study assumes the "
        "whole test split, 1,512 images, and states its n), mean over the similarity grid's seeds with a t CI, "
        "agreeing when the CI lies below the paper's level ('generally': the share of runs below it is shown beside "
        "the mean); inconclusive when the debiased estimator's mean falls on the other side of the level.",
    )
    read = plan.rows.filter(pl.col("method").is_in(["full", "linear"]))
    suffix = f"; {plan.text()}{_baseline_text(read, degenerate)}"
    claim.parts.append(_wins_part("Full beats Linear", full_linear, confidence, suffix))
    read = plan.rows.join(cells.filter(pl.col("method") == "scratch").select(keys), on=keys)
    claim.parts.append(scratch_part(cells, confidence, f"; {plan.text()}{_baseline_text(read, degenerate)}"))
    for backbone in sorted(grid["backbone"].unique()):
        claim.parts.append(level_part(grid, backbone, layer, samples, paradigms, confidence))
    return claim


# --- (b) the trajectory's shape --------------------------------------------------------------------------------
def early_window(warmup_epochs: float) -> int:
    """The epochs the early decline is measured over: the warm-up, then the first epoch at the full rate."""
    return math.ceil(warmup_epochs) + 1


def trajectory_shape(values: np.ndarray, window: int = 1) -> tuple[float, float]:
    """For one run's similarity per epoch (epoch 0 = before fine-tuning): (the mean decline per epoch over the first
    `window` epochs minus the mean absolute change per epoch after them, the least-squares slope over the second
    half, epochs >= E / 2). nan where the trajectory is too short for the window or the half."""
    if values.size <= window:
        return math.nan, math.nan
    steps = np.abs(np.diff(values[window:]))
    sharp = (values[0] - values[window]) / window - (steps.mean() if steps.size else 0.0)
    epochs = np.arange(values.size)
    late = epochs >= (values.size - 1) / 2
    slope = np.polyfit(epochs[late], values[late], 1)[0] if late.sum() >= 2 else math.nan
    return float(sharp), float(slope)


def trajectory_claim(
    trajectories: pl.DataFrame,
    similarity: str,
    layer: int,
    paradigms: dict[str, str],
    confidence: float,
    warmup_epochs: float,
) -> Claim:
    window = early_window(warmup_epochs)
    claim = Claim(
        "b",
        "Similarity drops sharply, then supervised models keep decaying while self-supervised ones recover",
        "Over 20 epochs the similarity first declines sharply, then changes gradually: supervised models keep "
        "decaying while unsupervised ones (OpenCLIP, DINOv2) recover (Sec. 3.3, Fig. 4a).",
        f"Per run of the similarity grid: the mean decline per epoch over the first {window} epochs (the warm-up of "
        f"{warmup_epochs:g} epochs, rounded up, and the first epoch at the full learning rate: with a warm-up the "
        "largest drop comes after it) minus the mean absolute change per epoch after them (sharp first drop: > 0), "
        "and the least-squares slope of the second half of the trajectory, epochs >= E/2 (supervised: < 0, OpenCLIP "
        "and DINOv2: > 0); means over seeds with t CIs. The first part has no margin: any decline faster at first "
        "than later passes; the window follows this study's recipe (the paper names no warm-up).",
    )
    data = trajectories.filter((pl.col("metric") == similarity) & (pl.col("layer") == layer)).sort("run", "epoch")
    for backbone in sorted(data["backbone"].unique()):
        mine = data.filter(pl.col("backbone") == backbone)
        shapes = [
            trajectory_shape(group["value"].to_numpy(), window)
            for _, group in mine.group_by("run", maintain_order=True)
        ]
        if mine["epoch"].n_unique() <= window + 1:
            claim.parts.append(
                Part(f"{backbone}: trajectory", f"{window} epochs or fewer after the window: no shape", INCONCLUSIVE)
            )
            continue
        sharp, slope = np.array(shapes).T
        name = _name(backbone, paradigms)
        mean, lo, hi, n = mean_ci(sharp, confidence)
        measured = f"{mean:+.4f} per epoch ({_ci(lo, hi, 4)}, {_plural(n, 'seed')}; epochs 0-{window})"
        claim.parts.append(Part(f"{name}: sharp first drop", measured, band_verdict(lo, hi, low=0.0)))
        mean, lo, hi, n = mean_ci(slope, confidence)
        measured = f"slope {mean:+.5f} per epoch ({_ci(lo, hi, 5)}, {_plural(n, 'seed')})"
        if paradigms.get(backbone) == "supervised":
            claim.parts.append(Part(f"{name}: keeps decaying", measured, band_verdict(lo, hi, high=0.0)))
        elif paradigms.get(backbone) in ("clip", "self_supervised"):
            claim.parts.append(Part(f"{name}: recovers", measured, band_verdict(lo, hi, low=0.0)))
    return claim


# --- (c) Table 2: forgetting -------------------------------------------------------------------------------------
def forgetting_claim(
    runs: pl.DataFrame,
    configured: pl.DataFrame,
    pretrained: pl.DataFrame,
    k: int,
    paradigms: dict[str, str],
    confidence: float,
    degenerate: dict[str, str],
) -> Claim:
    metric = knn_metric(k)
    claim = Claim(
        "c",
        "Supervised pre-training forgets less on the natural domain",
        "Supervised pre-trained models resist forgetting better, while unsupervised ones (OpenCLIP, DINOv2) forget "
        "severely: their k-NN accuracy on ImageNet after fine-tuning falls much further (Sec. 3.2, Table 2).",
        f"Per cell of Table 2 (fine-tuning dataset x pool, Full runs, the common seeds): the drop in k-NN accuracy "
        f"(k = {k}, ImageNet or its stand-in) from the pre-trained model, in points. Against each other backbone, the "
        "other's drop minus the supervised one's, cell by cell (all in k-NN accuracy points, each cell once, cells "
        "taken as independent); agrees when the t CI of its mean over cells lies above 0.",
    )
    full = pl.col("method") == "full"
    plan = seed_plan(runs.filter(full), configured.filter(full))
    before = pretrained.filter(pl.col("metric") == metric).select("backbone", "pool", pre="value")
    drops = _cell_means(plan, metric).join(before, on=["backbone", "pool"])
    drops = drops.with_columns(drop=pl.col("pre") - pl.col("value"))
    supervised = [b for b in sorted(drops["backbone"].unique()) if paradigms.get(b) == "supervised"]
    others = [b for b in sorted(drops["backbone"].unique()) if paradigms.get(b) in ("clip", "self_supervised")]
    if not supervised or not others:
        claim.parts.append(
            Part(
                "supervised vs unsupervised",
                f"the study needs a supervised and an unsupervised backbone with Full runs; {plan.text()}",
                INCONCLUSIVE,
            )
        )
    for sup in supervised:
        for other in others:
            keys = ["dataset", "pool"]
            mine = drops.filter(pl.col("backbone") == sup).select(*keys, sup="drop")
            pairs = mine.join(drops.filter(pl.col("backbone") == other).select(*keys, other="drop"), on=keys)
            label = f"{_name(sup, paradigms)} forgets less than {_name(other, paradigms)}"
            if pairs.height == 0:
                claim.parts.append(Part(label, f"no cell with Full runs of both; {plan.text()}", INCONCLUSIVE))
                continue
            gap = 100 * (pairs["other"] - pairs["sup"]).to_numpy()
            mean, lo, hi, n_cells = mean_ci(gap, confidence, (-200.0, 200.0))  # a difference of two drops in points
            read = plan.rows.filter(pl.col("backbone").is_in([sup, other]))
            measured = (
                f"drop {100 * pairs['sup'].mean():.2f} vs {100 * pairs['other'].mean():.2f} points (mean over "
                f"cells); difference {mean:+.2f} points ({_ci(lo, hi, 2)}, {_plural(n_cells, 'cell')}, "
                f"{int((gap > 0).sum())} won; {plan.text()}{_baseline_text(read, degenerate)})"
            )
            claim.parts.append(Part(label, measured, band_verdict(lo, hi, low=0.0)))
    return claim


# --- (d) Fig. 5 --------------------------------------------------------------------------------------------------
def expected_sign(metric: str) -> int:
    """+1 or -1, or 0 where the paper implies no sign."""
    return EXPECTED_SIGN.get(metric.split("@")[0], 0)


def _direction(fit: dict, metric: str) -> int:
    """+1 when r's CI lies on the metric's expected side of 0 (either side where none is expected), -1 on the other."""
    sign, certain = expected_sign(metric), _certain_sign(fit)
    return certain * sign if sign else abs(certain)


def _certain_sign(fit: dict) -> int:
    """+1 or -1 when r's CI excludes 0, else 0."""
    lo, hi = fit["r_lo"], fit["r_hi"]
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return 0
    return 1 if lo > 0 else -1 if hi < 0 else 0


def _stronger(a: np.ndarray, sign_a: int, b: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """Median and percentile CI of sign_a * r_a - |r_b| over bootstrap replicates (pairs where both are defined):
    the stronger relation counted in its expected direction (|r_a| where `sign_a` is 0: none is implied), the weaker
    one in either. NaN when a side has no replicates (its line could not be fitted)."""
    if a.size == 0 or b.size == 0:
        return math.nan, math.nan, math.nan
    if a.size != b.size:
        raise ValueError(f"bootstrap replicates differ in number: {a.size} and {b.size}")
    both = np.isfinite(a) & np.isfinite(b)
    if both.sum() < 10:
        return math.nan, math.nan, math.nan
    gap = (sign_a * a[both] if sign_a else np.abs(a[both])) - np.abs(b[both])
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
        "The interval fit of Fig. 5 on the similarity grid's runs (results/analysis/correlation.csv: the runs "
        "removed as outliers and why, the intervals used, the valid bootstrap replicates). The paper prints no sign. "
        "With k-NN accuracy this study expects r > 0, from the paper's argument that similarity is the pre-trained "
        "model kept (more similar, less forgetting); with ECE the text implies none ('a similar trend is observed "
        "for ECE' says the relation is clear, not its direction), so its sign is shown, not required. ViT's relation "
        "is clear when r's CI excludes 0 on the expected side, and disagrees on the other side (k-NN only). The "
        "paper's words are judged as the order they imply (clear > moderate > little = negligible): the relation "
        "said to be stronger counts in its expected direction (+r with k-NN: a wrong-signed r is never strong; |r| "
        "with ECE), the other by |r|, agreeing when the bootstrap CI of the difference lies above 0. Inconclusive: "
        "comparing two backbones' relations with one metric whose signs are both certain (CIs exclude 0) and differ, "
        "and any part reading a fit that is not usable (too few intervals, mostly degenerate bootstrap).",
    )
    rows = fits.filter(pl.col("layer") == layer)
    boot = bootstrap.filter(pl.col("layer") == layer)
    metrics = (knn_metric(k), knn_ece_metric(k))
    words = {}  # (backbone, metric) -> the paper's word
    for backbone, paradigm in sorted(paradigms.items()):
        if paradigm in PAPER_STRENGTH and rows.filter(pl.col("backbone") == backbone).height:
            words |= {(backbone, m): w for m, w in zip(metrics, PAPER_STRENGTH[paradigm])}

    def fit_of(backbone: str, metric: str) -> dict | None:
        """The fit's row when it is usable for a verdict, else None."""
        fit = rows.filter((pl.col("backbone") == backbone) & (pl.col("metric") == metric))
        if fit.height == 0 or fit["r"][0] is None or not fit["usable"][0]:
            return None
        return fit.row(0, named=True)

    def fit_text(backbone: str, metric: str) -> str:
        fit = rows.filter((pl.col("backbone") == backbone) & (pl.col("metric") == metric))
        if fit.height == 0:
            return f"{backbone} {metric}: no fit"
        row = fit.row(0, named=True)
        if row["r"] is None or not row["usable"]:
            return f"{backbone} {metric}: not usable ({row['note'] or 'no line'})"
        excluded = f", {row['removed']} removed as outliers" if row["removed"] else ""
        return (
            f"{backbone} {metric}: r = {row['r']:+.2f} ({_ci(row['r_lo'], row['r_hi'], 2)}, {row['runs']} runs, "
            f"{row['intervals']} intervals{excluded}, {row['bootstrap_valid']} of {row['bootstrap']} replicates valid)"
        )

    def replicates(backbone: str, metric: str) -> np.ndarray:
        mine = boot.filter((pl.col("backbone") == backbone) & (pl.col("metric") == metric)).sort("replicate")
        return mine["r"].to_numpy()

    for backbone in [b for b, p in sorted(paradigms.items()) if p == "supervised"]:
        for metric in metrics:
            if (backbone, metric) not in words:
                continue
            fit, sign = fit_of(backbone, metric), expected_sign(metric)
            expected = f"expected sign {sign:+d}" if sign else "either sign"
            label = f"{_name(backbone, paradigms)}: a clear relation with {metric} ({expected})"
            if fit is None:
                claim.parts.append(Part(label, fit_text(backbone, metric), INCONCLUSIVE))
                continue
            direction = _direction(fit, metric)
            verdict = AGREES if direction == 1 else DISAGREES if direction == -1 and sign else INCONCLUSIVE
            claim.parts.append(Part(label, fit_text(backbone, metric), verdict))
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
        sign = expected_sign(ma)
        label = (
            f"{_name(a, paradigms)} with {ma} ({words[a, ma]}, {f'{sign:+d} x r' if sign else '|r|'}) > "
            f"{_name(b, paradigms)} with {mb} ({words[b, mb]}, |r|)"
        )
        fit_a, fit_b = fit_of(a, ma), fit_of(b, mb)
        measured = f"{fit_text(a, ma)}; {fit_text(b, mb)}"
        if fit_a is None or fit_b is None:
            claim.parts.append(Part(label, measured, INCONCLUSIVE))
            continue
        # Two backbones' relations with one metric; OpenCLIP's ECE against its k-NN have no common sign to differ in.
        signs = _certain_sign(fit_a), _certain_sign(fit_b)
        if ma == mb and 0 not in signs and signs[0] != signs[1]:
            claim.parts.append(Part(label, measured + "; their signs differ: not compared", INCONCLUSIVE))
            continue
        median, lo, hi = _stronger(replicates(a, ma), sign, replicates(b, mb), confidence)
        measured += f"; difference {median:+.2f} ({_ci(lo, hi, 2)})"
        claim.parts.append(Part(label, measured, band_verdict(lo, hi, low=0.0)))
    return claim


# --- (e) Sec. 3.1: which backbone and which pool ---------------------------------------------------------------
def accuracy_claim(
    runs: pl.DataFrame,
    configured: pl.DataFrame,
    paradigms: dict[str, str],
    confidence: float,
    degenerate: dict[str, str],
) -> Claim:
    claim = Claim(
        "e",
        "Supervised ViT is the most accurate; DINOv2 prefers mean-patch pooling, ViT and OpenCLIP the CLS token",
        "Supervised ViT pre-training surpasses the unsupervised OpenCLIP and DINOv2; for DINOv2, patch averaging "
        "outperforms the CLS token in most cases, while ViT and OpenCLIP achieve optimal results with the CLS token "
        "(Sec. 3.1, Table 1). Its own Table 1 fits this text only if its '()' is CLS minus mean (mean-patch better for "
        "DINOv2 in 8 of 10 cells, CLS better for ViT in 9 of 10 and OpenCLIP in 8 of 10); read as its caption has it, "
        "mean minus CLS, the reverse (DINOv2's mean-patch better in 2 of 10). This study's tables print mean minus "
        "CLS.",
        "Cells of Table 1 on the common seeds (as in (a)), Full and Linear runs. Backbones: per cell of dataset x "
        "method x pool, the supervised ViT's score against the other backbone's at the same pool (not each at its "
        "better pool); agrees when the exact CI of the share of cells won lies above one half. Pools: per backbone "
        "and cell of dataset x method with both pools, the paper's pool against the other; agrees when the CI of the "
        "share won lies above one half (the same band for DINOv2's 'in most cases' and ViT's and OpenCLIP's "
        "'optimal'), disagrees below it. With 10 cells, 9 must be won for the CI to clear one half.",
    )
    tuned = pl.col("method").is_in(["full", "linear"])
    plan = seed_plan(runs.filter(tuned), configured.filter(tuned))
    cells = _cell_means(plan, "score")
    suffix = f"; {plan.text()}"
    supervised = [b for b, p in sorted(paradigms.items()) if p == "supervised" and b in cells["backbone"]]
    others = [b for b, p in sorted(paradigms.items()) if p in ("clip", "self_supervised") and b in cells["backbone"]]
    keys = ["dataset", "method", "pool"]
    for sup in supervised:
        for other in others:
            mine = cells.filter(pl.col("backbone") == sup).select(*keys, winner="value")
            pairs = mine.join(cells.filter(pl.col("backbone") == other).select(*keys, loser="value"), on=keys)
            read = plan.rows.filter(pl.col("backbone").is_in([sup, other]))
            label = f"{_name(sup, paradigms)} more accurate than {_name(other, paradigms)}"
            claim.parts.append(_wins_part(label, pairs, confidence, suffix + _baseline_text(read, degenerate)))
    keys = ["dataset", "method"]
    for backbone in sorted(cells["backbone"].unique()):
        pool = PAPER_POOL.get(paradigms.get(backbone))
        if pool is None:
            continue
        other = "mean" if pool == "cls" else "cls"
        mine = cells.filter(pl.col("backbone") == backbone)
        pairs = (
            mine.filter(pl.col("pool") == pool)
            .select(*keys, winner="value")
            .join(mine.filter(pl.col("pool") == other).select(*keys, loser="value"), on=keys)
        )
        read = plan.rows.filter(pl.col("backbone") == backbone)
        label = f"{_name(backbone, paradigms)} better with {'the CLS token' if pool == 'cls' else 'mean-patch pooling'}"
        claim.parts.append(_wins_part(label, pairs, confidence, suffix + _baseline_text(read, degenerate)))
    if not claim.parts:
        claim.parts.append(Part("backbones and pools", f"no cells to compare{suffix}", INCONCLUSIVE))
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
    warmup_epochs: float = 0.0,
) -> tuple[list[Claim], dict]:
    """Every claim with its parts and verdicts, plus the facts of the study the page states at its top. `grids` is
    grids.parquet: every run the config asks for (failed ones included), its grids and its baseline flag."""
    layer = resolve_layer(runs, layer)
    selected = grid_runs(runs, grids, grid)
    grid_samples = cka_sample_sizes(selected)
    estimator = "biased (the paper's Eq. 1)" if similarity == "cka" else "debiased (U-statistic)"
    n_text = f"n = {', '.join(map(str, grid_samples))} test images"
    configured = grids.unique("run").filter(pl.col("method").is_in(PAPER_METHODS))
    degenerate = degenerate_runs(grids)
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
        degenerate=degenerate,
    )
    claims = [
        table1_claim(runs, configured, selected, layer, n_text, paradigms, confidence, degenerate),
        trajectory_claim(grid_runs(trajectories, grids, grid), similarity, layer, paradigms, confidence, warmup_epochs),
        forgetting_claim(runs, configured, pretrained, k, paradigms, confidence, degenerate),
        correlation_claim(fits, bootstrap, layer, k, paradigms, confidence),
        accuracy_claim(runs, configured, paradigms, confidence, degenerate),
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
    claims: list[Claim],
    facts: dict,
    path: str | Path,
    beyond: list[str] = (),
    rulers: list[dict] = (),
    peft=None,
    external: list[dict] = (),
    beyond_seeds: int | None = None,
) -> None:
    """The page; `beyond` holds the verdict lines of the similarity-preserving methods (repdrift.analysis.tradeoff),
    `beyond_seeds` their fewest paired seeds,
    `rulers` the paper's correlation conclusion under each similarity measure (repdrift.analysis.rulers,
    rulers_conclusion.csv), `peft` the parameter-efficient methods' verdicts (peft_verdicts.csv) or None,
    `external` the external models beside the Full runs (`external_rows`)."""
    e = html.escape
    runs = ", ".join(f"{b} {n}" for b, n in facts["runs_per_backbone"].items())
    head = (
        f"<h2>Findings: the paper's claims beside this study</h2><p>Zu et al. 2025 (arXiv 2503.07958) against "
        f"this study's {facts['study_runs']} runs. Similarity: linear CKA, {e(facts['estimator'])} estimator, "
        f"{e(facts['layer'])}, on {e(facts['samples'])} per run of the similarity grid "
        f"<code>{e(facts['grid'])}</code> (runs per backbone: {e(runs)}). k-NN: k = {facts['k']}. "
        f"Confidence intervals at {facts['confidence']:.0%}.</p>"
    )
    if facts.get("degenerate"):
        items = "".join(f"<li><code>{e(run)}</code>: {e(text)}</li>" for run, text in facts["degenerate"].items())
        count = len(facts["degenerate"])
        head += (
            f"<div class='inconclusive'><b>{_plural(count, 'run')} at or below the majority-class baseline</b> of "
            "the dataset's test set (always predicting the most frequent class scores as well; for mAP one constant "
            f"score for every image): every part that reads one names it.<ul>{items}</ul></div>"
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
        "any part disagrees, and is inconclusive otherwise. See <code>repdrift.analysis.findings</code>.</small></p>"
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
                f"r {e(r['supervised'])} minus |r| {e(r['self_supervised'])} = {r['difference']:+.2f} "
                f"({_ci(r['lo'], r['hi'], 2)})"
            )

        items = "".join(
            f"<li class='{r['verdict']}'><b>{e(r['measure'])}</b>: {ruler_line(r)} &rarr; <i>{r['verdict']}</i></li>"
            for r in rulers
        )
        rule += (
            "<h3>Under other rulers</h3><p>A simpler form of claim (d) with each similarity measure in place of CKA: "
            "does forgetting track similarity more for the supervised ViT than for DINOv2? The bootstrap CI of the "
            "supervised ViT's Spearman r with k-NN forgetting (positive: more similar, less forgetting, so a "
            "wrong-signed r never counts as strong) minus DINOv2's |r|, over the similarity grid's runs "
            "(results/analysis/rulers.csv; claim (d) itself also asks for a clear ViT relation, uses the interval "
            f"fit and ECE, and orders OpenCLIP): agrees above 0, disagrees below.</p><ul>{items}</ul>"
        )
    if beyond:
        rule += (
            "<h3>Beyond the paper: similarity-preserving fine-tuning</h3><p>The paper's open question is a model with "
            "both high similarity and accuracy. Its companion work (Zu et al. 2025, arXiv 2503.07399) reports over "
            "30 % higher similarity at competitive accuracy. Per cell of the preserving grid, each candidate named in "
            "advance (the grid's preserving methods, WiSE-FT at the a fixed in the config) against Full of the same "
            "seeds: the mean per-seed score difference in points and similarity gain (from the mean log-ratio), each "
            "with its t interval. A candidate agrees when the interval of its score difference lies above -1 point "
            "and that of its gain above +30 %, disagrees when either lies on the other side; a cell agrees when a "
            "candidate does with intervals widened for the number of candidates (Bonferroni), disagrees when all "
            f"do. {_seed_power(beyond_seeds, confidence=facts['confidence'])}"
            "(results/analysis/tradeoff_verdicts.csv)</p><ul>"
            + "".join(f"<li>{e(line)}</li>" for line in beyond)
            + "</ul>"
        )
    if peft is not None:
        rule += _peft_section(peft, facts["confidence"])
    if external:
        rule += _external_section(list(external), facts)
    Path(path).write_text(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Findings</title>"
        f"<style>{STYLE}</style></head><body>{head}{table}{rule}</body></html>\n"
    )


def _seed_power(seeds: int | None, alike: str = "the methods are alike", confidence: float = 0.95) -> str:
    """What `seeds` paired seeds can conclude: the width of a t interval in standard errors (empty when unknown)."""
    if seeds is None:
        return ""
    if seeds < 2:
        return "With fewer than two paired seeds there is no interval, and every part is inconclusive. "
    width = stats.t.ppf(0.5 + confidence / 2, seeds - 1)
    return (
        f"With {_plural(seeds, 'paired seed')}, a t interval is {width:.1f} standard errors wide on each side "
        f"({confidence:.0%}): only a difference far larger than its spread between seeds gets a verdict, so an "
        f"inconclusive part here says the grid is too small to tell, not that {alike}. "
    )


def _peft_section(verdicts, confidence: float) -> str:
    """The verdict against Biderman et al. 2024 per cell of the PEFT grid (repdrift.analysis.tradeoff.peft_verdicts),
    with what its number of seeds lets it conclude."""
    from repdrift.analysis.tradeoff import peft_claim_text, peft_method_text  # altair with it: only with a PEFT grid

    e = html.escape
    if verdicts.height == 0:
        return "<h3>Beyond the paper: parameter-efficient fine-tuning</h3><p>No run of the PEFT grid was measured.</p>"
    power = _seed_power(int(verdicts["seeds"].min()), "LoRA and Full are alike", confidence)
    items = "".join(
        f"<li class='{cell['claim_verdict'][0]}'><b>{e(peft_claim_text(cell))}</b><ul>"
        + "".join(f"<li>{e(peft_method_text(r))}</li>" for r in cell.iter_rows(named=True))
        + "</ul></li>"
        for _, cell in verdicts.group_by(["dataset", "backbone", "pool"], maintain_order=True)
    )
    return (
        '<h3>Beyond the paper: parameter-efficient fine-tuning</h3><p>Biderman et al. 2024 ("LoRA Learns Less and '
        'Forgets Less", TMLR) report for language models that LoRA learns less of the target domain and forgets '
        "less of the source than full fine-tuning. Here, per cell of the PEFT grid (analysis.peft_grid), each "
        "parameter-efficient run method against Full of the same seeds, trained with the same recipe and epochs "
        "(a comparison at equal training, not at a matched score) and at lr_scale x Full's learning rate "
        "(preserving.&lt;method&gt;.lr_scale; Biderman et al. found LoRA's best rate about ten times full "
        "fine-tuning's): the mean per-seed difference of the test score in points (learns less: below 0) and of "
        "the k-NN accuracy on the natural domain after fine-tuning, in points (forgets less: above 0, a smaller "
        "drop from the pre-trained model's, this study's measure of forgetting where Biderman et al. score "
        "source-domain benchmarks), each with its t "
        "interval; a method agrees when both parts agree, disagrees when either disagrees. Beside them, not part "
        "of the claim, the difference of the final similarity to the pre-trained model in the page's measure "
        "(keeps more: above 0). The claim is judged on LoRA: it agrees when every rank agrees, disagrees when some "
        "rank disagrees with its intervals widened for the number of ranks (Bonferroni). BitFit and partial "
        f"fine-tuning are measured beside it. {power}(results/analysis/peft_verdicts.csv; the rank of each "
        f"method's weight change is in the report's change_rank figure.)</p><ul>{items}</ul>"
    )


# ---- Your own fine-tuned models ------------------------------------------------------------------------------------
# Each run of `external_models` (method `external`, repdrift.training.external) beside the Full runs of its dataset,
# backbone and pool: shown, not judged (a model made elsewhere, by a recipe this study does not know).
EXTERNAL_VALUES = ("similarity", "forgetting", "knn_ece", "score", "ece")


def external_rows(
    runs: pl.DataFrame, pretrained: pl.DataFrame, similarity: str, layer: int | str, k: int
) -> list[dict]:
    """One dict per external run: its keys, `similarity` (the `similarity` metric at `layer`, `final` = each run's
    final representation), `forgetting` (the pre-trained model's k-NN accuracy minus the run's, in points), `knn_ece`,
    `score` and `ece` (None without a head), each also as `full_<value>`, the mean over the Full runs of its dataset,
    backbone and pool (None without any), with `full_runs` their number."""
    before = pretrained.filter(pl.col("metric") == knn_metric(k)).select("backbone", "pool", pre="value")

    def values(method: str) -> pl.DataFrame:
        mine = runs.filter(pl.col("method") == method)
        last = mine.filter(pl.col("metric") == similarity).group_by("run").agg(last=pl.col("layer").max())
        at = last.with_columns(at=pl.col("last") if layer == "final" else pl.lit(layer, pl.Int64))
        sim = mine.join(at, on="run").filter((pl.col("metric") == similarity) & (pl.col("layer") == pl.col("at")))
        wide = mine.filter(pl.col("layer").is_null()).pivot(
            on="metric", index=["run", "dataset", "backbone", "pool", "seed"], values="value"
        )
        for name in ("score", "ece", knn_metric(k), knn_ece_metric(k)):
            if name not in wide.columns:
                wide = wide.with_columns(pl.lit(None, pl.Float64).alias(name))
        return (
            wide.join(sim.select("run", similarity=pl.col("value")), on="run", how="left")
            .join(before, on=["backbone", "pool"], how="left")
            .select(
                "run",
                "dataset",
                "backbone",
                "pool",
                "seed",
                "similarity",
                forgetting=100 * (pl.col("pre") - pl.col(knn_metric(k))),
                knn_ece=pl.col(knn_ece_metric(k)),
                score=pl.col("score"),
                ece=pl.col("ece"),
            )
        )

    external = values("external")
    if external.height == 0:
        return []
    cell = ["dataset", "backbone", "pool"]
    full = (
        values("full")
        .group_by(cell)
        .agg(pl.len().alias("full_runs"), *(pl.col(v).mean().alias(f"full_{v}") for v in EXTERNAL_VALUES))
    )
    return external.join(full, on=cell, how="left").sort("run").to_dicts()


def _external_section(rows: list[dict], facts: dict) -> str:
    """The page's section on the external models (`external_rows`)."""
    e = html.escape

    def number(value, digits: int = 3) -> str:
        return "&ndash;" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"

    cells = []
    for row in rows:
        full = row.get("full_runs")
        mine = [number(row[v], 2 if v == "forgetting" else 3) for v in EXTERNAL_VALUES]
        theirs = [number(row.get(f"full_{v}"), 2 if v == "forgetting" else 3) for v in EXTERNAL_VALUES]
        cells.append(
            f"<tr><td><code>{e(row['run'])}</code></td>"
            + "".join(f"<td>{m}</td>" for m in mine)
            + (
                f"<td>{_plural(full, 'run')}: " + ", ".join(theirs) + "</td></tr>"
                if full
                else "<td>no Full run of this dataset, backbone and pool</td></tr>"
            )
        )
    header = "".join(
        f"<th>{e(name)}</th>"
        for name in (
            "run",
            "similarity",
            "k-NN forgetting (points)",
            "k-NN ECE",
            "score",
            "ECE",
            "Full runs (mean: similarity, forgetting, k-NN ECE, score, ECE)",
        )
    )
    return (
        "<h3>Your own fine-tuned models</h3><p>Each model of the config's <code>external_models</code>, imported "
        "from its file (rule import_external, never trained) and measured as every run is: its similarity to its "
        f"backbone's pre-trained weights (linear CKA, {e(facts['estimator'])} estimator, {e(facts['layer'])}), its "
        f"k-NN forgetting on the natural domain (the pre-trained model's k-NN accuracy at k = {facts['k']} minus "
        "the model's, in points) and the natural-domain ECE of its k-NN vote, and, when its file has a head and "
        "its label order is known, its test score and ECE on the target dataset (&ndash; without). Beside each, the "
        "mean over this study's Full runs of the same dataset, backbone and pool. Shown, not judged: no verdict "
        "reads these runs (results/tables/runs.parquet, method <code>external</code>).</p>"
        f"<table><tr>{header}</tr>{''.join(cells)}</table>"
    )
