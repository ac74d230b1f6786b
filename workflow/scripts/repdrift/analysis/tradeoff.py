"""Beyond the paper: which fine-tuning keeps the pre-trained representation, at what cost in the task, and can
forgetting be told from the first epochs?

`tradeoff_table`: per dataset, backbone, pool and method of the preserving grid (`analysis.preserving_grid`), the mean
over seeds with its t confidence interval (clipped to the quantity's range) of the task score, the final similarity (the
configured CKA estimator and layer), k-NN forgetting (the run's k-NN accuracy on the natural domain minus its pre-
trained backbone's) and the natural-domain ECE (`knn_ece@k`), the change against Full (score in points, similarity in
%), the share of runs inside T_X(eta, eps), whether the method is on the Pareto front of mean score against mean
similarity (no other method of its cell is at least as good on both and better on one) and `change_rank`, the median
over seeds of the rank of the weight change (runs.parquet's change_rank; NaN for Linear and WiSE-FT).

`paired_verdicts`: per dataset, backbone and pool, every candidate named in advance (`candidates`: the grid's
preserving methods, WiSE-FT at the a fixed in the config) against Full of the same seeds: per-seed differences, their
t intervals, and verdicts (agrees / disagrees / inconclusive) against the companion paper's headline (Zu et al. 2025,
arXiv 2503.07399: "over 30%" higher similarity at competitive accuracy, read as within 1 point of Full's score).

`early_prediction`: from each run's similarity at epoch e, predict its final k-NN forgetting and natural-domain ECE
with ordinary least squares (y = a + b x_e), fitted per backbone on every other run of the study that has a
per-epoch trajectory that starts from the pre-trained model (every trained run but Linear ones, whose similarity is 1
by construction, and Scratch ones, which start elsewhere), leave-one-run-out;
the mean absolute error per epoch beside that of predicting the other runs' mean (the baseline). Torch-free.
"""

from __future__ import annotations

import math

import altair as alt
import numpy as np
import polars as pl

from repdrift.analysis.paper import in_similarity_space, mean_ci, per_run_values, resolve_layer, value_range
from repdrift.report.plots import METHOD_COLOURS, similarity_axis
from repdrift.study import base_method, family_of

COMPANION_GAIN = 30.0  # % higher similarity at competitive accuracy: Zu et al. 2025, arXiv 2503.07399 v1 (abstract)
CELL = ["dataset", "backbone", "pool"]
QUANTITIES = ("score", "similarity", "forgetting", "knn_ece")


def run_values(runs: pl.DataFrame, pretrained: pl.DataFrame, similarity: str, layer: int, k: int) -> pl.DataFrame:
    """One row per run: score, similarity (the configured measure), both CKA estimators (`cka`, `cka_debiased`, for
    the verdicts), forgetting, knn_ece (repdrift.analysis.paper.per_run_values) and `change_rank` (the median rank of
    the weight change of a trained run's block matrices, repdrift.analysis.weight_change; null for the others)."""
    measures = list(dict.fromkeys([similarity, "cka", "cka_debiased"]))
    values = per_run_values(runs, pretrained, measures, layer, k)
    ranks = runs.filter(pl.col("metric") == "change_rank").select("run", change_rank="value")
    values = values.join(ranks, on="run", how="left")
    return values.with_columns(similarity=pl.col(similarity)).drop("knn", "knn_pretrained")


def pareto(score: np.ndarray, similarity: np.ndarray) -> np.ndarray:
    """Whether each point is on the Pareto front (higher is better on both): nothing else dominates it."""
    front = np.ones(score.size, dtype=bool)
    for i in range(score.size):
        at_least = (score >= score[i]) & (similarity >= similarity[i])
        better = (score > score[i]) | (similarity > similarity[i])
        front[i] = not np.any(at_least & better)
    return front


def tradeoff_table(
    values: pl.DataFrame, space: pl.DataFrame, eta: float, eps: float, confidence: float, similarity: str = "cka"
):
    """The table of the module docstring from `run_values` of the preserving grid's runs; `similarity` names the
    measure in the `similarity` column, for its range (each t interval is clipped to its quantity's range)."""
    ranges = {name: value_range(similarity if name == "similarity" else name) for name in QUANTITIES}
    inside = space.select(
        "run", inside=pl.Series(in_similarity_space(space["similarity"], space["divergence"], eta, eps))
    )
    values = values.join(inside, on="run", how="left")
    rows = []
    for key, group in values.group_by(*CELL, "method", maintain_order=True):
        row = dict(zip([*CELL, "method"], key), runs=group.height)
        for name in QUANTITIES:
            row[name], row[f"{name}_lo"], row[f"{name}_hi"], _ = mean_ci(group[name].sort(), confidence, ranges[name])
        known = group["inside"].drop_nulls()
        row["in_tx"] = float(known.mean()) if known.len() else math.nan
        row["in_tx_runs"] = known.len()
        ranks = group["change_rank"].drop_nulls() if "change_rank" in group.columns else pl.Series([], dtype=pl.Float64)
        row["change_rank"] = float(ranks.median()) if ranks.len() else math.nan  # median over seeds; trained runs only
        rows.append(row)
    table = pl.DataFrame(rows)
    full = table.filter(pl.col("method") == "full").select(*CELL, full_score="score", full_similarity="similarity")
    table = table.join(full, on=CELL, how="left").with_columns(
        score_change_points=100 * (pl.col("score") - pl.col("full_score")),
        similarity_change_pct=100 * (pl.col("similarity") / pl.col("full_similarity") - 1),
    )
    fronts = []
    for _, cell in table.group_by(*CELL, maintain_order=True):
        fronts.append(
            cell.with_columns(pareto=pl.Series(pareto(cell["score"].to_numpy(), cell["similarity"].to_numpy())))
        )
    return pl.concat(fronts).drop("full_score", "full_similarity").sort(*CELL, "method")


# The companion paper (Zu et al. 2025, arXiv 2503.07399 v1, "Keeping Representation Similarity in Finetuning for
# Medical Image Analysis": "improves representation similarity by over 30% while maintaining competitive accuracy")
# does not name its CKA estimator in its abstract; this study assumes the seed paper's Eq. 1, the biased one.
VERDICT_ESTIMATOR = "cka"
AGREES, DISAGREES, INCONCLUSIVE = "agrees", "disagrees", "inconclusive"


def candidates(methods, verdict_wiseft: str) -> list[str]:
    """The methods a verdict compares with Full, named before any test score is read: every similarity-preserving
    method of the grid (repdrift.study family `preserving`), WiSE-FT only as `verdict_wiseft`, the run method of the a
    fixed in advance (repdrift.study `wiseft_method` of `preserving.wiseft.verdict_alpha`); never the paper's own, nor
    the parameter-efficient ones, which the verdict against Biderman et al. judges."""

    return sorted(
        m for m in set(methods) if family_of(m) == "preserving" and (not m.startswith("wiseft") or m == verdict_wiseft)
    )


def _band(lo: float, hi: float, bound: float) -> str:
    """`agrees` when the interval lies above `bound`, `disagrees` below it, else (or without one) inconclusive."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return INCONCLUSIVE
    return AGREES if lo > bound else DISAGREES if hi < bound else INCONCLUSIVE


def _judge(pairs: pl.DataFrame, confidence: float, max_loss: float) -> dict:
    """The paired intervals and verdicts of one candidate at one confidence level (see `paired_verdicts`)."""
    row = {}
    score = 100 * (pairs["score_m"] - pairs["score"]).to_numpy()
    row["score_diff"], row["score_lo"], row["score_hi"], _ = mean_ci(score, confidence, (-100.0, 100.0))
    dropped = set()
    for estimator, prefix in ((VERDICT_ESTIMATOR, "gain"), ("cka_debiased", "gain_other")):
        x, y = pairs[estimator].to_numpy(), pairs[f"{estimator}_m"].to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):  # a non-positive debiased CKA has no ratio
            ratio = np.log(y / x)
        finite = np.isfinite(ratio)
        dropped |= set(pairs["seed"].to_numpy()[~finite].tolist()) if prefix == "gain" else set()
        mean, lo, hi, _ = mean_ci(ratio[finite], confidence)
        row[f"{prefix}_pct"], row[f"{prefix}_lo"], row[f"{prefix}_hi"] = (
            100 * (math.exp(v) - 1) if np.isfinite(v) else math.nan for v in (mean, lo, hi)
        )
    within = _band(row["score_lo"], row["score_hi"], -max_loss)
    reaches = _band(row["gain_lo"], row["gain_hi"], COMPANION_GAIN)
    verdict = AGREES if within == reaches == AGREES else DISAGREES if DISAGREES in (within, reaches) else INCONCLUSIVE
    return row | dict(within=within, reaches=reaches, verdict=verdict, no_ratio_seeds=sorted(dropped))


def paired_verdicts(
    values: pl.DataFrame, verdict_wiseft: str, confidence: float, max_loss: float = 1.0
) -> pl.DataFrame:
    """Per cell and candidate: the per-seed differences from Full of the same seed (same head initialisation),
    score in points and similarity as a log-ratio, their means and t intervals, and the verdicts. `values`: one row
    per run with `score` and both CKA estimators (`cka`, `cka_debiased`, the configured layer).

    "Within `max_loss` points" agrees when the interval of the score difference lies above -max_loss (disagrees
    below it); "+30 %" when the interval of the gain, exp(mean log-ratio) - 1, lies above 30 % (disagrees below).
    A candidate agrees with the companion paper when both agree, disagrees when either disagrees. A cell agrees when
    some candidate agrees with its intervals widened for the number of candidates (Bonferroni: confidence
    1 - (1 - c) / k, `cell_confidence`), so that trying several cannot make one agree by chance; it disagrees when
    every candidate disagrees. Seeds without a partner (Full's or the candidate's) are dropped and named
    (`unpaired_seeds`), as are seeds whose similarity ratio is undefined (a non-positive CKA). `gain_ceiling_pct` is
    the largest gain Full's mean similarity leaves (CKA <= 1): below +30 % no candidate can reach it."""
    rows = []
    for key, cell in values.group_by(*CELL, maintain_order=True):
        where = dict(zip(CELL, key))
        full = cell.filter(pl.col("method") == "full")
        named = candidates(cell["method"].unique(), verdict_wiseft)
        cell_confidence = 1 - (1 - confidence) / max(len(named), 1)
        ceiling = 100 * (1 / full[VERDICT_ESTIMATOR].mean() - 1) if full.height else math.nan
        for method in named:
            mine = cell.filter(pl.col("method") == method)
            pairs = full.join(mine, on="seed", suffix="_m").sort("seed")
            unpaired = sorted(set(full["seed"]) ^ set(mine["seed"]))
            judged = _judge(pairs, confidence, max_loss)
            adjusted = _judge(pairs, cell_confidence, max_loss)
            rows.append(
                dict(
                    where,
                    method=method,
                    candidates=", ".join(named),
                    seeds=pairs.height,
                    unpaired_seeds=", ".join(map(str, unpaired)),
                    no_ratio_seeds=", ".join(map(str, judged.pop("no_ratio_seeds"))),
                    estimator=VERDICT_ESTIMATOR,
                    max_loss_points=max_loss,
                    companion_gain_pct=COMPANION_GAIN,
                    gain_ceiling_pct=ceiling,
                    **judged,
                    cell_confidence=cell_confidence,
                    verdict_for_cell=adjusted["verdict"],
                )  # fmt: skip
            )
    frame = pl.DataFrame(rows)
    if frame.height == 0:
        return frame
    cell_verdict = frame.group_by(CELL).agg(
        cell_verdict=pl.when((pl.col("verdict_for_cell") == AGREES).any())
        .then(pl.lit(AGREES))
        .when((pl.col("verdict") == DISAGREES).all())
        .then(pl.lit(DISAGREES))
        .otherwise(pl.lit(INCONCLUSIVE))
    )
    return frame.join(cell_verdict, on=CELL).sort(*CELL, "method")


def verdict_lines(verdicts: pl.DataFrame) -> list[str]:
    """One sentence per cell for the findings page and the captions: each candidate's paired numbers, the verdict."""
    lines = []
    for key, cell in verdicts.group_by(*CELL, maintain_order=True):
        where = "{}, {} ({})".format(*key)
        first = cell.row(0, named=True)
        parts = []
        for r in cell.iter_rows(named=True):
            missing = f", seed {r['unpaired_seeds']} unpaired" if r["unpaired_seeds"] else ""
            parts.append(
                f"{r['method']} {r['score_diff']:+.1f} points [{r['score_lo']:+.1f}, {r['score_hi']:+.1f}], "
                f"similarity {r['gain_pct']:+.1f} % [{r['gain_lo']:+.1f}, {r['gain_hi']:+.1f}] "
                f"({r['gain_other_pct']:+.1f} % debiased; {r['seeds']} paired seeds{missing}): {r['verdict']}"
            )
        ceiling = first["gain_ceiling_pct"]
        reach = (
            f" (Full's similarity leaves at most {ceiling:+.1f} %: out of reach)" if ceiling < COMPANION_GAIN else ""
        )
        lines.append(
            f"{where}: candidates {first['candidates']} against Full of the same seeds, {first['estimator']} "
            f"estimator{reach}; {'; '.join(parts)}. Some candidate within {first['max_loss_points']:g} point and "
            f"above +{COMPANION_GAIN:.0f} % (at {first['cell_confidence']:.1%} for {len(cell)} candidates): "
            f"{first['cell_verdict']}."
        )
    return lines


# --- parameter-efficient fine-tuning against Biderman et al. 2024 ---------------------------------------------------
# "LoRA Learns Less and Forgets Less" (TMLR 2024), for language models: against full fine-tuning, LoRA learns less of
# the target domain and forgets less of the source. Read here as paired comparisons with Full of the same seeds, on
# the grid `analysis.peft_grid`, at the same recipe and number of epochs (not at a matched score): the score
# difference below 0 (learns less) and the k-NN forgetting difference above 0 (a smaller drop of natural-domain k-NN
# accuracy, this study's measure of forgetting: forgets less) are the claim; the similarity difference above 0 (keeps
# more of the pre-trained representation) is this study's own question, which Biderman et al. do not measure, shown
# beside it and no part of the verdict. BitFit and partial fine-tuning are measured the same way; the claim is
# judged on LoRA's ranks.
PEFT_PARTS = (  # (column, name of the part, the sign the claim gives the difference from Full)
    ("score", "learns_less", -1),
    ("forgetting", "forgets_less", +1),
    ("similarity", "keeps_more", +1),
)
PEFT_CLAIM = ("learns_less", "forgets_less")  # Biderman et al.'s two parts; keeps_more is shown beside them


def _signed_band(lo: float, hi: float, sign: int) -> str:
    """`agrees` when the interval lies on the claim's side of 0, `disagrees` on the other, else inconclusive."""
    return _band(lo, hi, 0.0) if sign > 0 else _band(-hi, -lo, 0.0)


def _paired_ci(diff: np.ndarray, confidence: float):
    """mean_ci of per-seed differences, without an interval when they do not vary: equal differences (k-NN accuracy
    and accuracy move in steps of one image, so two seeds can tie) would give a zero-width interval, a verdict from a
    coincidence."""
    mean, lo, hi, n = mean_ci(diff, confidence)
    if n >= 2 and np.ptp(diff) == 0:
        return mean, math.nan, math.nan, n
    return mean, lo, hi, n


def _combined(parts: list[str]) -> str:
    return AGREES if set(parts) == {AGREES} else DISAGREES if DISAGREES in parts else INCONCLUSIVE


def peft_verdicts(values: pl.DataFrame, confidence: float) -> pl.DataFrame:
    """Per cell and parameter-efficient run method (repdrift.study family `peft`: each LoRA rank, BitFit, partial):
    the per-seed differences from Full of the same seed, their means and t intervals (score and forgetting in points,
    similarity in the configured measure's units) and each part's verdict; a method agrees with Biderman et al. when
    it learns less and forgets less (both intervals on the claim's side of 0), disagrees when either lies on the
    other side; `keeps_more` is judged alike but is no part of it. A cell's `claim_verdict` judges LoRA: agrees when
    every rank agrees; disagrees when some rank disagrees with its intervals widened for the number of ranks
    (Bonferroni at `claim_confidence`: each rank is one more chance to disagree); else, or without LoRA runs,
    inconclusive."""
    rows = []
    for key, cell in values.group_by(*CELL, maintain_order=True):
        full = cell.filter(pl.col("method") == "full")
        methods = sorted(m for m in cell["method"].unique() if family_of(m) == "peft")
        ranks = sum(base_method(m) == "lora" for m in methods)
        wide = 1 - (1 - confidence) / max(ranks, 1)
        for method in methods:
            pairs = full.join(cell.filter(pl.col("method") == method), on="seed", suffix="_m").sort("seed")
            row = dict(zip(CELL, key), method=method, seeds=pairs.height, claim_confidence=wide)
            row["unpaired_seeds"] = ", ".join(
                map(str, sorted(set(full["seed"]) ^ set(cell.filter(pl.col("method") == method)["seed"])))
            )
            widened = []
            for column, name, sign in PEFT_PARTS:
                scale = 1.0 if column == "similarity" else 100.0  # points
                diff = scale * (pairs[f"{column}_m"] - pairs[column]).to_numpy()
                row[f"{column}_diff"], row[f"{column}_lo"], row[f"{column}_hi"], _ = _paired_ci(diff, confidence)
                row[name] = _signed_band(row[f"{column}_lo"], row[f"{column}_hi"], sign)
                if name in PEFT_CLAIM:
                    _, lo, hi, _ = _paired_ci(diff, wide)
                    widened.append(_signed_band(lo, hi, sign))
            row["verdict"] = _combined([row[name] for name in PEFT_CLAIM])
            row["verdict_widened"] = _combined(widened)
            rows.append(row)
    frame = pl.DataFrame(rows)
    if frame.height == 0:
        return frame
    lora = frame.filter(pl.col("method").map_elements(base_method, return_dtype=pl.Utf8) == "lora")
    claim = lora.group_by(CELL).agg(
        claim_verdict=pl.when((pl.col("verdict") == AGREES).all())
        .then(pl.lit(AGREES))
        .when((pl.col("verdict_widened") == DISAGREES).any())
        .then(pl.lit(DISAGREES))
        .otherwise(pl.lit(INCONCLUSIVE))
    )
    return (
        frame.join(claim, on=CELL, how="left")
        .with_columns(pl.col("claim_verdict").fill_null(INCONCLUSIVE))
        .sort(*CELL, "method")
    )


PEFT_COLUMNS = tuple(column for column, _, _ in PEFT_PARTS)


def _interval(lo: float, hi: float, digits: int) -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "(no interval)"
    return f"[{lo:+.{digits}f}, {hi:+.{digits}f}]"


def peft_method_text(r: dict) -> str:
    """One PEFT run method's paired differences from Full and its verdicts (a row of `peft_verdicts`)."""
    ci = {c: _interval(r[f"{c}_lo"], r[f"{c}_hi"], 3 if c == "similarity" else 1) for c in PEFT_COLUMNS}
    missing = f", seed {r['unpaired_seeds']} unpaired" if r["unpaired_seeds"] else ""
    return (
        f"{r['method']}: score {r['score_diff']:+.1f} points {ci['score']} (learns less: {r['learns_less']}), "
        f"natural-domain k-NN accuracy {r['forgetting_diff']:+.1f} points {ci['forgetting']} (forgets less: "
        f"{r['forgets_less']}), similarity {r['similarity_diff']:+.3f} {ci['similarity']} (keeps more: "
        f"{r['keeps_more']}); {r['seeds']} paired seeds{missing}: learns less and forgets less: {r['verdict']}"
    )


def peft_claim_text(cell: pl.DataFrame) -> str:
    """A cell's claim and verdict (its rows of `peft_verdicts`)."""
    first = cell.row(0, named=True)
    return (
        "{}, {} ({}) against Full of the same seeds. ".format(*(first[c] for c in CELL))
        + f"LoRA learns less and forgets less (every rank; a rank disagrees at {first['claim_confidence']:.1%}): "
        f"{first['claim_verdict']}"
    )


def peft_lines(verdicts: pl.DataFrame) -> list[str]:
    """One sentence per cell for the rule's log and the caption: its claim, then each method's numbers."""
    return [
        f"{peft_claim_text(cell)}. " + "; ".join(peft_method_text(r) for r in cell.iter_rows(named=True)) + "."
        for _, cell in verdicts.group_by(*CELL, maintain_order=True)
    ]


# --- early prediction of forgetting ---------------------------------------------------------------------------------
def _loo_ols(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out predictions of y from x by OLS with intercept, and of the other runs' mean."""
    n = x.size
    fit, mean = np.empty(n), np.empty(n)
    for i in range(n):
        keep = np.arange(n) != i
        xs, ys = x[keep], y[keep]
        mean[i] = ys.mean()
        spread = xs - xs.mean()
        denom = float(spread @ spread)
        slope = float(spread @ (ys - ys.mean())) / denom if denom > 0 else 0.0
        fit[i] = ys.mean() + slope * (x[i] - xs.mean())
    return fit, mean


def early_prediction(trajectories: pl.DataFrame, values: pl.DataFrame, similarity: str, layer: int) -> pl.DataFrame:
    """Per backbone, target and epoch: leave-one-run-out MAE of OLS on the epoch's similarity and of the mean."""
    # Runs that start from the pre-trained model: a Linear run's similarity is 1 throughout (and it may train for
    # other epochs, train.linear_probe), and a Scratch run's distance to a model it never started from is no
    # forgetting (its epoch 0 alone would tell it apart). An external model's two points (pre-trained, imported) are
    # no epochs.
    curves = trajectories.filter(
        (pl.col("metric") == similarity)
        & (pl.col("layer") == layer)
        & ~pl.col("method").is_in(["linear", "scratch", "external"])
    )
    epochs = curves.group_by("run").agg(pl.col("epoch").n_unique().alias("n"))
    full_length = epochs["n"].max()
    runs = epochs.filter(pl.col("n") == full_length).select("run")  # WiSE-FT's two points are no trajectory
    curves = curves.join(runs, on="run")
    rows = []
    for backbone in sorted(curves["backbone"].unique()):
        wide = (
            curves.filter(pl.col("backbone") == backbone)
            .pivot(on="epoch", index="run", values="value", sort_columns=True)
            .join(values.select("run", "forgetting", "knn_ece"), on="run")
            .sort("run")
        )
        if wide.height < 3:
            continue  # leave-one-out needs two runs to fit a line
        for target in ("forgetting", "knn_ece"):
            y = wide[target].to_numpy()
            for epoch in sorted(int(c) for c in wide.columns if c.isdigit()):
                fit, mean = _loo_ols(wide[str(epoch)].to_numpy(), y)
                rows.append(
                    dict(
                        backbone=backbone,
                        target=target,
                        epoch=epoch,
                        runs=wide.height,
                        mae_similarity=float(np.abs(fit - y).mean()),
                        mae_mean=float(np.abs(mean - y).mean()),
                    )
                )
    schema = {
        "backbone": pl.Utf8,
        "target": pl.Utf8,
        "epoch": pl.Int64,
        "runs": pl.Int64,
        "mae_similarity": pl.Float64,
        "mae_mean": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema).with_columns(ratio=pl.col("mae_similarity") / pl.col("mae_mean"))


# --- figures and captions -------------------------------------------------------------------------------------------
def tradeoff_chart(table: pl.DataFrame, axis: str):
    """Mean score against mean similarity per method (t intervals as whiskers), the Pareto front joined, and each
    swept method's runs (LoRA's ranks, WiSE-FT's a) joined by a dotted grey line in the order of their value."""
    swept = {m: base_method(m) for m in table["method"] if base_method(m) != m}  # lora4 -> lora, wiseft0.5 -> wiseft
    data = table.with_columns(
        front=pl.when(pl.col("pareto")).then(pl.lit("on the front")).otherwise(pl.lit("dominated")),
        curve=pl.col("method").replace_strict(swept, default=None),
        sweep_value=pl.col("method").str.extract(r"([0-9.]+)$").cast(pl.Float64, strict=False),
    )
    # Three seeds give wide t intervals: the axes keep to the points' range and the whiskers are clipped to it.
    lo_x = max(0.0, math.floor(10 * float(data["similarity"].min()) - 1) / 10)
    lo_y, hi_y = float(data["score"].min()), float(data["score"].max())
    span = max(hi_y - lo_y, 0.05)
    y_domain = [max(0.0, lo_y - span / 2), min(1.0, hi_y + span / 2)]
    x_scale, y_scale = alt.Scale(domain=[lo_x, 1.0], clamp=True), alt.Scale(domain=y_domain, clamp=True)
    x = alt.X("similarity:Q", title=axis, scale=x_scale)
    y = alt.Y("score:Q", title="test score", scale=y_scale)
    base = alt.Chart().encode(
        x=x,
        y=y,
        color=alt.Color("method:N", scale=METHOD_COLOURS),
    )
    points = base.mark_point(size=90, filled=True).encode(
        shape=alt.Shape("front:N", title="Pareto"),
        tooltip=[
            "dataset",
            "backbone",
            "method",
            "runs",
            alt.Tooltip("score:Q", format=".3f"),
            alt.Tooltip("similarity:Q", format=".3f"),
            alt.Tooltip("forgetting:Q", format=".3f"),
            alt.Tooltip("in_tx:Q", format=".2f", title="share in T_X"),
        ],
    )
    x_bars = base.mark_rule(opacity=0.5, clip=True).encode(
        x=alt.X("similarity_lo:Q", title=axis, scale=x_scale), x2="similarity_hi:Q"
    )
    y_bars = base.mark_rule(opacity=0.5, clip=True).encode(
        y=alt.Y("score_lo:Q", title="test score", scale=y_scale), y2="score_hi:Q"
    )
    front = (
        alt.Chart()
        .mark_line(color="black", strokeDash=[4, 3])
        .encode(x=x, y=y, order="similarity:Q")
        .transform_filter(alt.datum.pareto)
    )
    # A swept method's runs (LoRA's ranks, WiSE-FT's a) joined in the order of their value: a curve, not points.
    sweeps = (
        alt.Chart()
        .mark_line(strokeDash=[2, 2], opacity=0.7)
        .encode(x=x, y=y, detail="curve:N", color=alt.value("gray"), order="sweep_value:Q")
        .transform_filter("isValid(datum.curve)")
    )
    layered = alt.layer(x_bars, y_bars, sweeps, points, front, data=data).properties(width=320, height=260)
    return layered.facet(column=alt.Column("backbone:N"), row=alt.Row("dataset:N"))


def early_chart(errors: pl.DataFrame):
    long = errors.unpivot(
        index=["backbone", "target", "epoch", "runs"],
        on=["mae_similarity", "mae_mean"],
        variable_name="predictor",
        value_name="mae",
    ).with_columns(
        predictor=pl.col("predictor").replace({"mae_similarity": "OLS on similarity", "mae_mean": "mean (baseline)"})
    )
    line = (
        alt.Chart(long)
        .mark_line(point=True)
        .encode(
            x=alt.X("epoch:O", title="similarity known up to epoch"),
            y=alt.Y("mae:Q", title="leave-one-run-out MAE"),
            color=alt.Color("predictor:N"),
            tooltip=["backbone", "target", "epoch", "predictor", alt.Tooltip("mae:Q", format=".4f"), "runs"],
        )
    )
    return line.properties(width=180, height=150).facet(column=alt.Column("backbone:N"), row=alt.Row("target:N"))


def _signed(value, digits: int, unit: str) -> str:
    return "no Full to compare" if value is None or math.isnan(value) else f"{value:+.{digits}f} {unit}"


def tradeoff_caption(table: pl.DataFrame, lines: list[str], facts: dict) -> str:
    means = "; ".join(
        f"{r['backbone']} {r['method']}: score {r['score']:.3f} ({_signed(r['score_change_points'], 1, 'pt')}), "
        f"similarity {r['similarity']:.3f} ({_signed(r['similarity_change_pct'], 1, '%')}), forgetting "
        f"{r['forgetting']:+.3f}, {r['runs']} runs"
        for r in table.iter_rows(named=True)
    )
    return (
        f"Similarity-preserving and parameter-efficient fine-tuning beside Full on the grids {facts['grid']}: mean "
        "test score against mean "
        f"final similarity ({facts['axis']}, n = {facts['n']} test images) over seeds, with {facts['confidence']:.0%} "
        f"t intervals clipped to each quantity's range; the dashed line joins the Pareto front (filled shapes on "
        f"it). Changes are against Full of the "
        f"same cell. {means}. Verdicts: {' '.join(lines)}"
    )


def early_caption(errors: pl.DataFrame, facts: dict) -> str:
    last = errors["epoch"].max()
    parts = []
    for row in (
        errors.filter(pl.col("epoch").is_in([1, last])).sort("backbone", "target", "epoch").iter_rows(named=True)
    ):
        parts.append(
            f"{row['backbone']} {row['target']} after epoch {row['epoch']}: {row['mae_similarity']:.4f} vs "
            f"{row['mae_mean']:.4f} for the mean ({row['runs']} runs)"
        )
    return (
        "Early prediction of forgetting: each run's final k-NN forgetting (k-NN accuracy on the natural domain minus "
        "the pre-trained model's) and natural-domain ECE predicted from its similarity after epoch e by least squares "
        f"on the other runs of its backbone (leave-one-run-out; {facts['axis']}), against predicting their mean. "
        f"Mean absolute error: {'; '.join(parts)}."
    )


def facts_for(runs: pl.DataFrame, similarity: str, layer: int | str) -> tuple[int, str]:
    """The resolved layer and the similarity axis title (plots.similarity_axis)."""
    resolved = resolve_layer(runs, layer)
    return resolved, similarity_axis(similarity, resolved, resolve_layer(runs, "final"))
