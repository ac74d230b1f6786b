"""Per-rule job times and peak memory of a finished study, from Snakemake's own benchmark files.

Every rule has a `benchmark:` directive writing `results/benchmarks/{rule}.tsv` or `{rule}/....tsv` (seconds, max
RSS, CPU time of its job), locally and on a cluster alike. This prints one Markdown row per rule: jobs, summed and
largest seconds, summed CPU seconds, largest max RSS; the README's performance section is its output.

    .venv/bin/python benchmarks/rule_times.py [results/benchmarks]
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl


def rule_times(root: Path) -> pl.DataFrame:
    files = sorted(root.rglob("*.tsv"))
    if not files:
        raise SystemExit(f"{root}: no benchmark files; run the study first (snakemake --cores 2)")
    frames = [
        pl.read_csv(path, separator="\t", infer_schema_length=0)
        .select(
            seconds=pl.col("s").cast(pl.Float64),
            max_rss=pl.col("max_rss").cast(pl.Float64, strict=False),
            cpu_time=pl.col("cpu_time").cast(pl.Float64, strict=False),
        )
        .with_columns(rule=pl.lit(path.relative_to(root).parts[0].removesuffix(".tsv")))
        for path in files
    ]
    return (
        pl.concat(frames)
        .group_by("rule")
        .agg(
            jobs=pl.len(),
            total_s=pl.col("seconds").sum(),
            max_s=pl.col("seconds").max(),
            cpu_s=pl.col("cpu_time").sum(),
            max_rss_mb=pl.col("max_rss").max(),
        )
        .sort("total_s", descending=True)
    )


def markdown(table: pl.DataFrame) -> str:
    lines = [
        "| rule | jobs | job-seconds | longest job (s) | CPU seconds | max RSS (MB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in table.iter_rows(named=True):
        rss = "" if row["max_rss_mb"] is None else f"{row['max_rss_mb']:.0f}"
        lines.append(
            f"| {row['rule']} | {row['jobs']} | {row['total_s']:.1f} | {row['max_s']:.1f} | "
            f"{row['cpu_s'] or 0:.1f} | {rss} |"
        )
    lines.append(
        f"| **all** | {table['jobs'].sum()} | {table['total_s'].sum():.1f} | {table['max_s'].max():.1f} | "
        f"{table['cpu_s'].fill_null(0).sum():.1f} | {table['max_rss_mb'].max() or 0:.0f} |"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(rule_times(Path(sys.argv[1] if len(sys.argv) > 1 else "results/benchmarks"))))
