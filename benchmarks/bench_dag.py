"""How long Snakemake takes to plan the paper's study, and to find a finished study up to date.

    .venv/bin/python benchmarks/bench_dag.py                   # ~3-4 min on 2 cores (runs the tiny study once)
    .venv/bin/python benchmarks/bench_dag.py --study DIR       # reuse (or keep) the finished tiny study in DIR
    .venv/bin/python benchmarks/bench_dag.py --no-study        # the paper dry run only, ~20 s

Measured, each the best of --reps runs, in this order, as wall time of the whole `snakemake` process:
- reference: `snakemake --version`, i.e. starting Python and importing Snakemake, which every call pays;
- paper dry run: `snakemake -n --configfile config/paper.yaml roots.yaml` with the dataset roots pointed at tiny
  fixtures in the real layouts (tests/paper_fixtures.py): the full grid, 127 runs, ~770 jobs. Target <= 5 s;
- no-op re-run: `snakemake --cores 2` in a finished study of tests/e2e/config.yaml (every rule, ~130 jobs), which
  must find nothing to do. Target <= 10 s.
Ratios are to the reference measured in the same run, so a slower or busier machine moves all three alike.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from paper_fixtures import PAPER, paper_overrides  # noqa: E402

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
TARGETS = {"paper dry run": 5.0, "no-op re-run": 10.0}


def run(args: list[str], check: str | None = None) -> float:
    """Wall time of one snakemake call; fails loudly if it fails or its output does not match regex `check`."""
    start = time.perf_counter()
    result = subprocess.run([*SNAKEMAKE, *args], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0 or (check and not re.search(check, result.stdout + result.stderr, re.MULTILINE)):
        output = (result.stdout + result.stderr)[-3000:]
        sys.exit(f"bench_dag: snakemake {' '.join(args)} failed or lacks {check!r}:\n{output}")
    return seconds


def best(reps: int, args: list[str], check: str | None = None) -> float:
    return min(run(args, check) for _ in range(reps))


def finished_study(folder: Path) -> Path:
    """The tiny end-to-end study in `folder`, run to completion unless it already is."""
    if not (folder / "config/config.yaml").exists():
        (folder / "config").mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "tests/e2e/config.yaml", folder / "config/config.yaml")
    print(f"bringing the tiny study in {folder} up to date (from scratch: a few minutes on 2 cores) ...", flush=True)
    seconds = run(["--directory", str(folder), "--cores", "2"])
    print(f"  done in {seconds:.0f} s", flush=True)
    return folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--study", type=Path, help="folder of the tiny study (made and run if needed; kept)")
    parser.add_argument("--no-study", action="store_true", help="skip the no-op re-run (and the study it needs)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench_dag-") as tmp:
        tmp = Path(tmp)
        roots = paper_overrides(tmp / "fixtures")
        paper_args = ["--directory", str(tmp / "paper"), "--configfile", str(PAPER), str(roots), "-n"]
        study = None if args.no_study else finished_study(args.study or tmp / "study")

        times = {"reference": best(args.reps, ["--version"])}
        times["paper dry run"] = best(args.reps, paper_args, check=r"^finetune\s+127$")  # the full grid
        if study is not None:
            times["no-op re-run"] = best(
                args.reps, ["--directory", str(study), "--cores", "2"], check="Nothing to be done"
            )

    print(f"\n{'snakemake call':<16} {'seconds':>8} {'x reference':>12} {'target':>8}")
    failed = []
    for name, seconds in times.items():
        target = TARGETS.get(name)
        verdict = "" if target is None else f"<= {target:.0f} s " + ("ok" if seconds <= target else "MISSED")
        if target is not None and seconds > target:
            failed.append(name)
        print(f"{name:<16} {seconds:>8.2f} {seconds / times['reference']:>12.1f}   {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
