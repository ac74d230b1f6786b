"""The error float16 storage (`features.dtype: float16`) adds to CKA and k-NN, measured on a finished study.

Storing float16 only rounds the stored arrays: the rest of the computation is the same. So every run's CKA
(both estimators, every layer and epoch) and k-NN (accuracy and the vote's ECE, every k) are recomputed here from
its float32 files with the features rounded to float16, and compared with the float32 values.

    .venv/bin/snakemake --cores 2          # the demo study, float32 (the default)
    .venv/bin/python benchmarks/float16_error.py [results] [config/config.yaml]
"""

from __future__ import annotations

import sys
from pathlib import Path
from unittest import mock

import numpy as np
import polars as pl
import yaml

from repdrift.formats import features as feature_files
from repdrift.measurement.measure import cka_table, knn_table


def rounded(reader):
    """`reader` with every array it returns rounded through float16."""

    def read(*args, **kwargs):
        value = reader(*args, **kwargs)
        if isinstance(value, np.ndarray):
            return value.astype(np.float16).astype(np.float32)
        if isinstance(value, tuple):
            return tuple(
                v.astype(np.float16).astype(np.float32) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
                for v in value
            )
        return type(value)(**{**value.__dict__, "final": value.final.astype(np.float16).astype(np.float32)})

    return read


def run_dirs(results: Path) -> list[Path]:
    return sorted(p.parent for p in results.glob("runs/*/*/*/seed*/trajectory.h5"))


def knn_input(results: Path, run: Path, knn_dataset: str) -> Path:
    own = run / f"features/{knn_dataset}.h5"
    return own if own.exists() else results / f"pretrained/{run.parts[-3]}/features/{knn_dataset}.h5"


def errors(results: Path, config: dict) -> pl.DataFrame:
    knn, n_bins = config["knn"], config.get("calibration", {}).get("n_bins", 15)
    ks = sorted({knn["k"], *knn["ks"]})
    rows = []
    for run in run_dirs(results):
        pool = run.parts[-2].split("-")[1]
        pretrained = results / f"pretrained/{run.parts[-3]}/features/{run.parts[-4]}.h5"
        natural = knn_input(results, run, knn["dataset"])
        exact = (
            cka_table(str(pretrained), str(run / "trajectory.h5")),
            knn_table(str(natural), pool, ks, knn["temperature"], n_bins),
        )
        with (
            mock.patch("repdrift.measurement.measure.read_layers", rounded(feature_files.read_layers)),
            mock.patch.object(feature_files.Trajectory, "__getitem__", rounded(feature_files.Trajectory.__getitem__)),
            mock.patch("repdrift.measurement.measure.read_features", rounded(feature_files.read_features)),
        ):
            half = (
                cka_table(str(pretrained), str(run / "trajectory.h5")),
                knn_table(str(natural), pool, ks, knn["temperature"], n_bins),
            )
        for column, a, b in (
            ("cka", exact[0], half[0]),
            ("cka_debiased", exact[0], half[0]),
            ("knn accuracy", exact[1], half[1]),
            ("knn ece", exact[1], half[1]),
        ):
            name = column.split()[-1]
            change = (a[name] - b[name]).abs()
            rows.append(
                dict(
                    measure=column,
                    runs=1,
                    values=change.len(),
                    sum_abs=float(change.sum()),
                    max_abs=float(change.max()),
                )
            )
    return (
        pl.DataFrame(rows)
        .group_by("measure", maintain_order=True)
        .agg(pl.col("runs", "values", "sum_abs").sum(), pl.col("max_abs").max())
        .with_columns(mean_abs=pl.col("sum_abs") / pl.col("values"))
    )


if __name__ == "__main__":
    results = Path(sys.argv[1] if len(sys.argv) > 1 else "results")
    config = yaml.safe_load(Path(sys.argv[2] if len(sys.argv) > 2 else "config/config.yaml").read_text())
    table = errors(results, config)
    print("| measure (every layer and epoch, every k) | runs | values | mean absolute change | largest |")
    print("|---|---:|---:|---:|---:|")
    for row in table.iter_rows(named=True):
        print(f"| {row['measure']} | {row['runs']} | {row['values']} | {row['mean_abs']:.1e} | {row['max_abs']:.1e} |")
