"""Aggregation of the per-run tables into the study's long-format tables (polars).

runs.parquet          one row per run x metric (x layer for CKA): accuracy, balanced_accuracy, map, auc, ece
                      (target domain), score (the dataset's headline: accuracy, or mAP if multi-label), test_loss
                      (last epoch), knn@k and knn_ece@k (natural domain), cka and cka_debiased (final model, per
                      layer: blocks 1..L, L + 1 = the final representation) and the configured measures beside
                      them (`similarity.measures`: procrustes, pwcca, rsa, mutual_knn@k, rbf_cka), cka_samples (the n
                      of the CKA); of a trained run, change_rank, change_rank_fraction and change_relative (the rank
                      of its weight change: repdrift.analysis.weight_change)
trajectories.parquet  one row per run x epoch x metric (x layer for the similarities): cka, cka_debiased, the other
                      measures, train_loss, test_loss, score
pretrained.parquet    one row per backbone x pool x k: the pre-trained model's knn@k and knn_ece@k
grids.parquet         one row per grid x run of the study, failed runs included: the run keys (what the config
                      asked for, so that seed rules see a run that failed); failure, the message of a run recorded as
                      failed (repdrift.study.failures; it has no rows in the other tables), else null; score, majority
                      and
                      chance (the dataset's test-set baselines, `score_baselines`) and at_baseline (score at or below
                      the majority baseline: a degenerate run, named on the findings page)
weight_change.parquet one row per trained run x block x matrix: the rank of its weight change at
                      `analysis.change_energy` (repdrift.analysis.weight_change.change_table)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from repdrift.analysis.weight_change import change_run_rows, change_table
from repdrift.data import read_dataset
from repdrift.errors import RepdriftError
from repdrift.metrics import mean_average_precision
from repdrift.study import knn_ece_metric, knn_metric

KEYS = ["run", "dataset", "backbone", "method", "pool", "seed"]
LONG_SCHEMA = {"metric": pl.Utf8, "layer": pl.Int64, "value": pl.Float64}


def _with_keys(frame: pl.DataFrame, run: dict) -> pl.DataFrame:
    """`run`: the run's id and wildcards, as the workflow knows them (common.smk `RUNS`), never parsed from paths."""
    keys = {**run, "seed": int(run["seed"])}
    return frame.with_columns(**{k: pl.lit(keys[k]) for k in KEYS}).select(KEYS + [c for c in frame.columns])


def _long(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(**{c: pl.col(c).cast(t) for c, t in LONG_SCHEMA.items()})


def similarity_columns(cka: pl.DataFrame) -> list[str]:
    """The similarity measures of a run's cka.parquet: both CKA estimators and the configured others."""
    return [c for c in cka.columns if c not in ("epoch", "layer", "pool", "samples")]


def run_rows(run: dict, classification: str, calibration: str, knn: str, cka: str, history: str) -> pl.DataFrame:
    """All final measurements of one run as long rows."""
    scores = pl.read_parquet(classification)
    headline = "map" if "accuracy" not in scores["metric"] else "accuracy"
    knn_frame = pl.read_parquet(knn)
    cka_final = pl.read_parquet(cka).filter(pl.col("epoch").is_null())
    parts = [
        scores.with_columns(layer=None),
        scores.filter(pl.col("metric") == headline).with_columns(metric=pl.lit("score"), layer=None),
        pl.read_parquet(calibration).with_columns(layer=None),
        knn_frame.select(metric=pl.format(knn_metric("{}"), "k"), layer=None, value="accuracy"),
        knn_frame.select(metric=pl.format(knn_ece_metric("{}"), "k"), layer=None, value="ece"),
        *(cka_final.select(metric=pl.lit(name), layer="layer", value=name) for name in similarity_columns(cka_final)),
        cka_final.head(1).select(metric=pl.lit("cka_samples"), layer=None, value="samples"),
        pl.read_parquet(history).tail(1).select(metric=pl.lit("test_loss"), layer=None, value="test_loss"),
    ]
    return _with_keys(pl.concat([_long(p) for p in parts]), run)


def trajectory_rows(run: dict, history: str, cka: str) -> pl.DataFrame:
    """Per-epoch similarities (every measure, every layer) and the training history of one run as long rows."""
    hist = pl.read_parquet(history)
    cka_epochs = pl.read_parquet(cka).filter(pl.col("epoch").is_not_null())
    parts = [
        cka_epochs.select("epoch", metric=pl.lit(name), layer="layer", value=name)
        for name in similarity_columns(cka_epochs)
    ]
    for column, name in (("train_loss", "train_loss"), ("test_loss", "test_loss"), ("test_value", "score")):
        parts.append(hist.select("epoch", metric=pl.lit(name), layer=pl.lit(None, pl.Int64), value=column))
    frame = pl.concat([p.with_columns(pl.col("epoch").cast(pl.Int64), pl.col("value").cast(pl.Float64)) for p in parts])
    return _with_keys(frame, run)


def score_baselines(folder: str | Path) -> dict[str, float]:
    """The test-set score of predictors that ignore the image, in the dataset's headline metric: `majority`, always
    the most frequent class (accuracy), or for multi-label data (mAP) one constant score for every image, whose AP
    per label is the label's prevalence; `chance`, a uniform guess (1 / classes; for mAP the same constant)."""
    dataset = read_dataset(folder)
    test = dataset.split("test")
    if dataset.task == "multilabel":
        targets = np.array(test["labels"].to_list(), dtype=np.int8)
        constant = mean_average_precision(np.zeros(targets.shape), targets)
        return dict(majority=constant, chance=constant)
    counts = test["label"].value_counts()["count"]
    classes = 2 if dataset.task == "binary" else len(dataset.classes)
    return dict(majority=float(counts.max() / test.height), chance=1 / classes)


def membership(study: list[dict], failed: dict[str, str], runs: pl.DataFrame, baselines: dict[str, dict]):
    """grids.parquet (module docstring) from every run of the study (its id, wildcards and grids)."""
    rows = [
        {**{k: entry[k] for k in KEYS}, "seed": int(entry["seed"]), "grid": grid, "failure": failed.get(entry["run"])}
        for entry in study
        for grid in entry["grids"]
    ]
    schema = {"grid": pl.Utf8, **{k: runs.schema[k] for k in KEYS}, "failure": pl.Utf8}
    frame = pl.DataFrame(rows, schema=schema)
    floors = pl.DataFrame(
        [dict(dataset=name, **values) for name, values in baselines.items()],
        schema={"dataset": pl.Utf8, "majority": pl.Float64, "chance": pl.Float64},
    )
    scores = runs.filter(pl.col("metric") == "score").select("run", score="value")
    return (
        frame.join(scores, on="run", how="left")
        .join(floors, on="dataset", how="left")
        .with_columns(at_baseline=pl.col("score") <= pl.col("majority") + 1e-9)  # e.g. one class for every image
    )


def aggregate(
    runs: list[dict],
    classification: list[str],
    calibration: list[str],
    knn: list[str],
    cka: list[str],
    history: list[str],
    pretrained_knn: list[str],
    study: list[dict],
    failed: dict[str, str],
    datasets: dict[str, str],
    runs_out: str,
    trajectories_out: str,
    pretrained_out: str,
    grids_out: str,
    weight_change: list[str] | None = None,
    change_runs: list[dict] | None = None,
    change_energy: float = 0.9,
    weight_change_out: str | None = None,
) -> None:
    """Write the study tables; `runs` (each finished run's id and wildcards) and the per-run files are parallel
    lists. `study` holds every run of the study (id, wildcards, `grids`: the grids it belongs to); the runs in
    `failed` (run: message) have no files and keep their message in grids.parquet's `failure` column. `datasets`:
    each target dataset's folder (manifest), for its score baselines. `weight_change` (the trained runs'
    weight_change.parquet, parallel to `change_runs`) -> `weight_change_out`, its ranks at `change_energy`, and
    their per-run medians in runs.parquet."""
    if not runs:
        raise RepdriftError(f"no run of the study finished: {len(failed)} failed (see their failed.json)")
    per_run = list(zip(runs, classification, calibration, knn, cka, history, strict=True))
    run_table = pl.concat([run_rows(*files) for files in per_run])
    if weight_change_out is not None:
        changes = change_table(change_runs or [], weight_change or [], change_energy)
        changes.write_parquet(weight_change_out)
        run_table = pl.concat([run_table, change_run_rows(changes).cast(run_table.schema)])
    trajectories = pl.concat([trajectory_rows(run, history, cka) for run, *_, cka, history in per_run])
    knn_before = pl.concat(
        [pl.read_parquet(path).with_columns(backbone=pl.lit(Path(path).parent.name)) for path in pretrained_knn]
    )
    pretrained = pl.concat(
        [
            knn_before.select("backbone", "pool", metric=pl.format(knn_metric("{}"), "k"), value="accuracy"),
            knn_before.select("backbone", "pool", metric=pl.format(knn_ece_metric("{}"), "k"), value="ece"),
        ]
    )
    baselines = {name: score_baselines(folder) for name, folder in datasets.items()}
    for frame, out in (
        (run_table, runs_out),
        (trajectories, trajectories_out),
        (pretrained, pretrained_out),
        (membership(study, failed, run_table, baselines), grids_out),
    ):
        frame.write_parquet(out)


# ---- The paper's Table 1 and Table 2 -------------------------------------------------------------------------------
# A cell is the CLS-pool value with, in parentheses, mean-patch minus CLS and the number of seeds it is over. Both
# are means over the seeds run with both pools only: a CLS cell may hold many more seeds (the similarity study's 20
# on ISIC) than its mean-pool partner, and an all-seed CLS mean beside a one-seed difference would print two numbers
# of different runs side by side. The all-seed CLS mean goes to the table's notes. Without a mean-pool partner the
# cell is the CLS mean over all its seeds.

METHODS = {"full": "Full", "linear": "Linear", "scratch": "Scratch"}
NO_DIFFERENCE = ("scratch",)  # the paper prints no pooling difference for Scratch
PRETRAINED = "pre-trained"
CELL_STATS = ["cls", "cls_seeds", "cls_sd", "mean", "mean_seeds", "cls_paired", "mean_minus_cls", "paired_seeds"]


def dataset_info(folders: dict[str, str | Path]) -> dict[str, dict]:
    """Per dataset name (order kept): its headline metric ("Acc", or "mAP" if multi-label) and train size."""
    info = {}
    for name, folder in folders.items():
        ds = read_dataset(folder)
        info[name] = {"metric": "mAP" if ds.task == "multilabel" else "Acc", "train_size": ds.split("train").height}
    return info


def size_label(n: int) -> str:
    """A sample count as the paper writes it: 366, 2.9k, 5.6k, 10k (two significant figures from 1,000 up,
    truncated as the paper's 5,654 -> 5.6k and 1,810 -> 1.8k)."""
    if n < 1000:
        return str(n)
    step = 10 ** (len(str(n)) - 2)
    rounded = n // step * step  # in integers: no float rounding at the edge
    value, unit = (rounded / 1e6, "M") if rounded >= 1_000_000 else (rounded / 1e3, "k")
    return f"{value:.1f}".removesuffix(".0") + unit


def _pool_stats(per_seed: pl.DataFrame, keys: list[str], pool: str) -> pl.DataFrame:
    return (
        per_seed.filter(pl.col("pool") == pool)
        .group_by(keys)
        .agg(
            pl.col("value").sort().mean().alias(pool),  # sorted: the same sum whatever the row order
            pl.len().cast(pl.Int64).alias(f"{pool}_seeds"),
            pl.col("value").sort().std().alias(f"{pool}_sd"),  # sample SD; null for one seed
        )
    )


def cell_stats(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Per key: CLS mean/seeds/SD, mean-pool mean/seeds, and over the seeds run with both pools the CLS mean
    (`cls_paired`) and mean-minus-CLS."""
    per_seed = frame.group_by(*keys, "pool", "seed").agg(pl.col("value").sort().mean())  # one value per seed
    cls = per_seed.filter(pl.col("pool") == "cls").drop("pool")
    patch = per_seed.filter(pl.col("pool") == "mean").drop("pool")
    pairs = (
        cls.join(patch, on=[*keys, "seed"], suffix="_mean")
        .group_by(keys)
        .agg(
            cls_paired=pl.col("value").sort().mean(),
            mean_minus_cls=(pl.col("value_mean") - pl.col("value")).sort().mean(),
            paired_seeds=pl.len().cast(pl.Int64),
        )
    )
    stats = _pool_stats(per_seed, keys, "cls").join(
        _pool_stats(per_seed, keys, "mean").drop("mean_sd"), on=keys, how="full", coalesce=True
    )
    counts = ("cls_seeds", "mean_seeds", "paired_seeds")
    return stats.join(pairs, on=keys, how="left").with_columns(pl.col(c).fill_null(0) for c in counts)


def _ordered(frame: pl.DataFrame, orders: dict[str, list[str]]) -> pl.DataFrame:
    """Keep only rows whose keys are listed and sort them in the listed (config) order."""
    ranks = [pl.col(c).replace_strict(order, list(range(len(order)))) for c, order in orders.items()]
    return frame.filter(*[pl.col(c).is_in(order) for c, order in orders.items()]).sort(ranks)


def _cell(stats: dict | None) -> str:
    """The printed cell in percent: "83.55 (-1.56; 3 seeds)", CLS and mean-patch minus CLS over the seeds with both
    pools; "" when the cell has no runs."""
    if stats is None:
        return ""
    if stats["cls"] is None:
        return f"{100 * stats['mean']:.2f} (mean-patch only)"
    if stats["mean_minus_cls"] is None:
        return f"{100 * stats['cls']:.2f}"
    return f"{100 * stats['cls_paired']:.2f} ({100 * stats['mean_minus_cls']:+.2f}; {_seeds(stats['paired_seeds'])})"


def _display(numbers: pl.DataFrame, rows: list[str], headers: dict[str, str]) -> pl.DataFrame:
    """Printed cells: one row per distinct `rows` key (in numbers' order), one column per dataset of `headers`
    (dataset -> column name), in that order."""
    cells = {(*(r[c] for c in rows), r["dataset"]): r for r in numbers.iter_rows(named=True)}
    keys = list(numbers.select(rows).unique(maintain_order=True).iter_rows())
    data = [[*key, *(_cell(cells.get((*key, d))) for d in headers)] for key in keys]
    return pl.DataFrame(data, schema={c: pl.Utf8 for c in [*rows, *headers.values()]}, orient="row")


def _with_info(stats: pl.DataFrame, datasets: dict[str, dict], metric: str | None = None) -> pl.DataFrame:
    info = pl.DataFrame(
        {
            "dataset": list(datasets),
            "metric": [metric or d["metric"] for d in datasets.values()],
            "train_size": [d["train_size"] for d in datasets.values()],
        },
        schema={"dataset": pl.Utf8, "metric": pl.Utf8, "train_size": pl.Int64},
    )
    return stats.join(info, on="dataset", how="left")


def table1(runs: pl.DataFrame, datasets: dict[str, dict], backbones: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Test score (accuracy, or mAP for multi-label data) per method x backbone (rows) and dataset (columns).

    datasets: name -> dataset_info entry, in column order. Returns (display, numbers): the printed table and one
    row per cell with run counts, as fractions (table1.csv).
    """
    keys = ["method", "backbone", "dataset"]
    paper_methods = runs.filter(pl.col("method").is_in(list(METHODS)))  # the preserving methods have their own table
    no_difference = pl.col("method").is_in(NO_DIFFERENCE)
    stats = cell_stats(paper_methods.filter(pl.col("metric") == "score"), keys).with_columns(
        *(pl.when(no_difference).then(None).otherwise(c).alias(c) for c in ("cls_paired", "mean_minus_cls")),
        pl.when(no_difference).then(0).otherwise("paired_seeds").alias("paired_seeds"),
    )
    methods = [m for m in METHODS if m in stats["method"]]
    orders = {"method": methods, "backbone": backbones, "dataset": list(datasets)}
    numbers = _ordered(_with_info(stats, datasets), orders)
    numbers = numbers.select(*keys, "metric", "train_size", *CELL_STATS)
    headers = {d: f"{d} {i['metric']} (n={size_label(i['train_size'])})" for d, i in datasets.items()}
    shown = numbers.with_columns(pl.col("method").replace(METHODS))
    return _display(shown, ["method", "backbone"], headers), numbers


def table2(
    runs: pl.DataFrame, pretrained: pl.DataFrame, datasets: dict[str, dict], backbones: list[str], k: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """k-NN accuracy on the natural domain after Full fine-tuning, per backbone (rows) and fine-tuning dataset
    (columns), beside the pre-trained backbone's (first column). Returns (display, numbers) like table1."""
    metric = knn_metric(k)
    tuned = runs.filter(pl.col("metric") == metric, pl.col("method") == "full")
    before = pretrained.filter(pl.col("metric") == metric).with_columns(dataset=pl.lit(PRETRAINED), seed=pl.lit(0))
    frame = pl.concat(
        [f.select("backbone", "dataset", "pool", pl.col("seed").cast(pl.Int64), "value") for f in (before, tuned)]
    )
    info = {PRETRAINED: {"train_size": None}, **datasets}
    numbers = _ordered(
        _with_info(cell_stats(frame, ["backbone", "dataset"]), info, metric),
        {"backbone": backbones, "dataset": list(info)},
    )
    numbers = numbers.select("backbone", "dataset", "metric", "train_size", *CELL_STATS)
    headers = {PRETRAINED: PRETRAINED, **{d: f"{d} (n={size_label(i['train_size'])})" for d, i in datasets.items()}}
    return _display(numbers, ["backbone"], headers), numbers


def _seeds(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def table_notes(numbers: pl.DataFrame) -> list[str]:
    """One line per cell whose CLS runs are more than its printed value uses: the all-seed CLS mean, its SD and
    seeds, beside the seeds the printed value and difference are over."""
    notes = []
    for row in numbers.iter_rows(named=True):
        method = [METHODS.get(row["method"], row["method"])] if "method" in row else []  # Table 2 is Full only
        where = " ".join([row["dataset"], *method, row["backbone"]])
        if row["cls"] is None:
            if row["mean_seeds"] > 1:
                notes.append(f"{where}: mean-patch mean of {_seeds(row['mean_seeds'])}; no CLS run.")
            continue
        paired = row["mean_minus_cls"] is not None
        if row["cls_seeds"] == 1 or (paired and row["paired_seeds"] == row["cls_seeds"]):
            continue  # the printed value is every CLS run: nothing more to say
        note = f"{where}: CLS mean of all {_seeds(row['cls_seeds'])} {100 * row['cls']:.2f}"
        if row["cls_sd"] is not None:
            note += f" (SD {100 * row['cls_sd']:.2f} points)"
        if paired:
            note += f"; the cell's CLS value and difference are over the {_seeds(row['paired_seeds'])} with both pools"
        notes.append(note + ".")
    return notes


def html_table(table: pl.DataFrame, title: str, notes: list[str] | None = None) -> str:
    """A standalone HTML page holding the table (and notes below it), for the report (which shows HTML inline)."""
    from html import escape

    head = "".join(f"<th>{escape(c)}</th>" for c in table.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{'' if v is None else escape(str(v))}</td>" for v in row) + "</tr>"
        for row in table.iter_rows()
    )
    below = "<ul>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>" if notes else ""
    return (
        f"<!DOCTYPE html><html><body><h3>{escape(title)}</h3><table border='1' cellpadding='4' "
        f"style='border-collapse:collapse'><tr>{head}</tr>{rows}</table>{below}</body></html>\n"
    )


def markdown(table: pl.DataFrame, notes: list[str] | None = None) -> str:
    """A Markdown table, then (if any) the notes as a bullet list after a blank line."""
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "---|" * len(table.columns)
    body = ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in table.iter_rows()]
    bullets = ["", *(f"- {n}" for n in notes)] if notes else []
    return "\n".join([header, rule, *body, *bullets]) + "\n"
