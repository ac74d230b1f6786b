"""Aggregation of the per-run tables into the study's long-format tables (polars).

runs.parquet          one row per run x metric (x layer for CKA): accuracy, balanced_accuracy, map, auc, ece,
                      knn@k, cka (final, per layer), score (the dataset's headline: accuracy, or mAP if
                      multi-label), test_loss (last epoch)
trajectories.parquet  one row per run x epoch x metric (x layer for CKA): cka, train_loss, test_loss, score
pretrained.parquet    one row per backbone x pool x k: the pre-trained model's k-NN accuracy
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

RUN_PATTERN = re.compile(
    r"results/runs/(?P<dataset>[^/]+)/(?P<backbone>[^/]+)/(?P<method>[^/-]+)-(?P<pool>[^/]+)/seed(?P<seed>\d+)/"
)
KEYS = ["run", "dataset", "backbone", "method", "pool", "seed"]
LONG_SCHEMA = {"metric": pl.Utf8, "layer": pl.Int64, "value": pl.Float64}


def run_keys(path: str) -> dict:
    match = RUN_PATTERN.search(str(path))
    if match is None:
        raise ValueError(f"{path} is not inside a run folder results/runs/<dataset>/<backbone>/<method>-<pool>/seed<n>/")
    keys = match.groupdict()
    keys["seed"] = int(keys["seed"])
    keys["run"] = match.group(0)[len("results/runs/") : -1]
    return keys


def _with_keys(frame: pl.DataFrame, path: str) -> pl.DataFrame:
    keys = run_keys(path)
    return frame.with_columns(**{k: pl.lit(keys[k]) for k in KEYS}).select(KEYS + [c for c in frame.columns])


def _long(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(**{c: pl.col(c).cast(t) for c, t in LONG_SCHEMA.items()})


def run_rows(classification: str, calibration: str, knn: str, cka: str, history: str) -> pl.DataFrame:
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
        cka_final.select(metric=pl.lit("cka"), layer="layer", value="cka"),
        pl.read_parquet(history).tail(1).select(metric=pl.lit("test_loss"), layer=None, value="test_loss"),
    ]
    return _with_keys(pl.concat([_long(p) for p in parts]), classification)


def trajectory_rows(history: str, cka: str) -> pl.DataFrame:
    """Per-epoch CKA (every layer) and the training history of one run as long rows."""
    hist = pl.read_parquet(history)
    cka_epochs = pl.read_parquet(cka).filter(pl.col("epoch").is_not_null())
    parts = [cka_epochs.select("epoch", metric=pl.lit("cka"), layer="layer", value="cka")]
    for column, name in (("train_loss", "train_loss"), ("test_loss", "test_loss"), ("test_value", "score")):
        parts.append(hist.select("epoch", metric=pl.lit(name), layer=pl.lit(None, pl.Int64), value=column))
    frame = pl.concat([p.with_columns(pl.col("epoch").cast(pl.Int64), pl.col("value").cast(pl.Float64)) for p in parts])
    return _with_keys(frame, history)


def aggregate(
    classification: list[str],
    calibration: list[str],
    knn: list[str],
    cka: list[str],
    history: list[str],
    pretrained_knn: list[str],
    grids: dict[str, list[str]],
    runs_out: str,
    trajectories_out: str,
    pretrained_out: str,
    grids_out: str,
) -> None:
    """Write the study tables; inputs are parallel lists of per-run files (same run order)."""
    runs = pl.concat(
        [run_rows(*files) for files in zip(classification, calibration, knn, cka, history, strict=True)]
    )
    trajectories = pl.concat([trajectory_rows(h, c) for h, c in zip(history, cka, strict=True)])
    pretrained = pl.concat(
        [
            pl.read_parquet(path).with_columns(backbone=pl.lit(Path(path).parent.name))
            for path in pretrained_knn
        ]
    ).select("backbone", "pool", metric=pl.format("knn@{}", "k"), value="accuracy")
    membership = pl.DataFrame(
        [{"grid": grid, "run": run} for run, names in grids.items() for grid in names],
        schema={"grid": pl.Utf8, "run": pl.Utf8},
    )
    for frame, out in ((runs, runs_out), (trajectories, trajectories_out), (pretrained, pretrained_out),
                       (membership, grids_out)):
        frame.write_parquet(out)


def _cls_with_mean_difference(frame: pl.DataFrame, rows: list[str], column: str) -> pl.DataFrame:
    """The paper's cell: the CLS value with (mean-patch minus CLS) in parentheses, means over seeds."""
    means = frame.group_by(*rows, column, "pool").agg(value=pl.col("value").mean())
    cls = means.filter(pl.col("pool") == "cls").drop("pool")
    patch = means.filter(pl.col("pool") == "mean").drop("pool").rename({"value": "patch"})
    cells = cls.join(patch, on=[*rows, column], how="full", coalesce=True).with_columns(
        cell=pl.when(pl.col("patch").is_null())
        .then(pl.format("{}", pl.col("value").round(3)))
        .when(pl.col("value").is_null())
        .then(pl.format("mean-patch {}", pl.col("patch").round(3)))
        .otherwise(pl.format("{} ({})", pl.col("value").round(3), (pl.col("patch") - pl.col("value")).round(3)))
    )
    return cells.pivot(on=column, index=rows, values="cell", sort_columns=True).sort(rows)


def table1(runs: pl.DataFrame) -> pl.DataFrame:
    """Test score (accuracy, or mAP for multi-label data) per backbone x method (rows) and dataset (columns)."""
    return _cls_with_mean_difference(runs.filter(pl.col("metric") == "score"), ["backbone", "method"], "dataset")


def table2(runs: pl.DataFrame, pretrained: pl.DataFrame, k: int) -> pl.DataFrame:
    """k-NN accuracy on the natural domain of each fine-tuned model, per backbone x method and fine-tuning
    dataset, beside the pre-trained backbone's."""
    metric = f"knn@{k}"
    tuned = runs.filter(pl.col("metric") == metric)
    before = pretrained.filter(pl.col("metric") == metric).with_columns(method=pl.lit("pre-trained"),
                                                                        dataset=pl.lit("(none)"))
    frame = pl.concat([tuned.select("backbone", "method", "dataset", "pool", "value"),
                       before.select("backbone", "method", "dataset", "pool", "value")])
    return _cls_with_mean_difference(frame, ["backbone", "method"], "dataset")


def html_table(table: pl.DataFrame, title: str) -> str:
    """A standalone HTML page holding the table, for the report (which shows HTML results inline)."""
    from html import escape

    head = "".join(f"<th>{escape(c)}</th>" for c in table.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{'' if v is None else escape(str(v))}</td>" for v in row) + "</tr>"
        for row in table.iter_rows()
    )
    return (f"<!DOCTYPE html><html><body><h3>{escape(title)}</h3><table border='1' cellpadding='4' "
            f"style='border-collapse:collapse'><tr>{head}</tr>{rows}</table></body></html>\n")


def markdown(table: pl.DataFrame) -> str:
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "---|" * len(table.columns)
    body = ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in table.iter_rows()]
    return "\n".join([header, rule, *body]) + "\n"
