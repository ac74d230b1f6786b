"""Aggregation of the per-run tables into the study's long-format tables (polars).

runs.parquet          one row per run x metric (x layer for CKA): accuracy, balanced_accuracy, map, auc, ece
                      (target domain), score (the dataset's headline: accuracy, or mAP if multi-label), test_loss
                      (last epoch), knn@k and knn_ece@k (natural domain), cka and cka_debiased (final model, per
                      layer: blocks 1..L, L + 1 = the final representation) and the configured measures beside
                      them (`similarity.measures`: procrustes, pwcca, rsa, mutual_knn@k, rbf_cka), cka_samples (the n
                      of the CKA)
trajectories.parquet  one row per run x epoch x metric (x layer for the similarities): cka, cka_debiased, the other
                      measures, train_loss, test_loss, score
pretrained.parquet    one row per backbone x pool x k: the pre-trained model's knn@k and knn_ece@k
grids.parquet         one row per grid x run of the study: failure, the message of a run recorded as failed
                      (repdrift.failures; it has no rows in the other tables), else null
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from repdrift.data import read_dataset
from repdrift.errors import RepdriftError

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
        knn_frame.select(metric=pl.format("knn@{}", "k"), layer=None, value="accuracy"),
        knn_frame.select(metric=pl.format("knn_ece@{}", "k"), layer=None, value="ece"),
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


def aggregate(
    runs: list[dict],
    classification: list[str],
    calibration: list[str],
    knn: list[str],
    cka: list[str],
    history: list[str],
    pretrained_knn: list[str],
    grids: dict[str, list[str]],
    failed: dict[str, str],
    runs_out: str,
    trajectories_out: str,
    pretrained_out: str,
    grids_out: str,
) -> None:
    """Write the study tables; `runs` (each run's id and wildcards) and the per-run files are parallel lists.
    `grids` names every run of the study with its grids; the runs in `failed` (run: message) have no files and
    keep their message in grids.parquet's `failure` column."""
    if not runs:
        raise RepdriftError(f"no run of the study finished: {len(failed)} failed (see their failed.json)")
    per_run = list(zip(runs, classification, calibration, knn, cka, history, strict=True))
    run_table = pl.concat([run_rows(*files) for files in per_run])
    trajectories = pl.concat([trajectory_rows(run, history, cka) for run, *_, cka, history in per_run])
    knn_before = pl.concat(
        [pl.read_parquet(path).with_columns(backbone=pl.lit(Path(path).parent.name)) for path in pretrained_knn]
    )
    pretrained = pl.concat(
        [
            knn_before.select("backbone", "pool", metric=pl.format("knn@{}", "k"), value="accuracy"),
            knn_before.select("backbone", "pool", metric=pl.format("knn_ece@{}", "k"), value="ece"),
        ]
    )
    membership = pl.DataFrame(
        [{"grid": grid, "run": run, "failure": failed.get(run)} for run, names in grids.items() for grid in names],
        schema={"grid": pl.Utf8, "run": pl.Utf8, "failure": pl.Utf8},
    )
    for frame, out in (
        (run_table, runs_out),
        (trajectories, trajectories_out),
        (pretrained, pretrained_out),
        (membership, grids_out),
    ):
        frame.write_parquet(out)


# ---- The paper's Table 1 and Table 2 -------------------------------------------------------------------------------
# A cell is the CLS-pool value (mean over its seeds) with, in parentheses, mean-patch minus CLS. The difference is
# averaged over the seeds run with both pools only: a CLS cell may hold many more seeds (the similarity study's 20
# on ISIC) than its mean-pool partner, and subtracting the all-seed CLS mean would mix seed noise into the gap.

METHODS = {"full": "Full", "linear": "Linear", "scratch": "Scratch"}
NO_DIFFERENCE = ("scratch",)  # the paper prints no pooling difference for Scratch
PRETRAINED = "pre-trained"
CELL_STATS = ["cls", "cls_seeds", "cls_sd", "mean", "mean_seeds", "mean_minus_cls", "paired_seeds"]


def dataset_info(folders: dict[str, str | Path]) -> dict[str, dict]:
    """Per dataset name (order kept): its headline metric ("Acc", or "mAP" if multi-label) and train size."""
    info = {}
    for name, folder in folders.items():
        ds = read_dataset(folder)
        info[name] = {"metric": "mAP" if ds.task == "multilabel" else "Acc", "train_size": ds.split("train").height}
    return info


def size_label(n: int) -> str:
    """A sample count as the paper writes it: 366, 2.9k, 5.6k, 10k (two significant figures from 1,000 up,
    truncated as the paper's 5,654 -> 5.6k and 1,849 -> 1.8k)."""
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
    """Per key: CLS mean/seeds/SD, mean-pool mean/seeds, and mean-minus-CLS over the seeds run with both pools."""
    per_seed = frame.group_by(*keys, "pool", "seed").agg(pl.col("value").sort().mean())  # one value per seed
    cls = per_seed.filter(pl.col("pool") == "cls").drop("pool")
    patch = per_seed.filter(pl.col("pool") == "mean").drop("pool")
    pairs = (
        cls.join(patch, on=[*keys, "seed"], suffix="_mean")
        .group_by(keys)
        .agg(
            mean_minus_cls=(pl.col("value_mean") - pl.col("value")).sort().mean(), paired_seeds=pl.len().cast(pl.Int64)
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
    """The printed cell: "83.55 (-1.56)" in percent; "" when the cell has no runs."""
    if stats is None:
        return ""
    if stats["cls"] is None:
        return f"{100 * stats['mean']:.2f} (mean-patch only)"
    if stats["mean_minus_cls"] is None:
        return f"{100 * stats['cls']:.2f}"
    return f"{100 * stats['cls']:.2f} ({100 * stats['mean_minus_cls']:+.2f})"


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
    stats = cell_stats(paper_methods.filter(pl.col("metric") == "score"), keys).with_columns(
        pl.when(pl.col("method").is_in(NO_DIFFERENCE)).then(None).otherwise("mean_minus_cls").alias("mean_minus_cls"),
        pl.when(pl.col("method").is_in(NO_DIFFERENCE)).then(0).otherwise("paired_seeds").alias("paired_seeds"),
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
    metric = f"knn@{k}"
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
    """One line per cell averaged over several seeds: how many, their SD, and how many seeds the difference uses."""
    notes = []
    for row in numbers.iter_rows(named=True):
        method = [METHODS.get(row["method"], row["method"])] if "method" in row else []  # Table 2 is Full only
        where = " ".join([row["dataset"], *method, row["backbone"]])
        if row["cls"] is None:
            if row["mean_seeds"] > 1:
                notes.append(f"{where}: mean-patch mean of {_seeds(row['mean_seeds'])}; no CLS run.")
            continue
        if row["cls_seeds"] == 1:  # one seed: the cell is that run, nothing to say
            continue
        note = f"{where}: CLS mean of {_seeds(row['cls_seeds'])}"
        if row["cls_sd"] is not None:
            note += f" (SD {100 * row['cls_sd']:.2f} points)"
        if row["mean_minus_cls"] is not None:
            note += f"; the difference is over the {_seeds(row['paired_seeds'])} with both pools"
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
