"""benchmarks/gpu_check.py, the prepared GPU check, runs end to end on CPU with a tiny model (a smoke test)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # runs the GPU check's CPU smoke study

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_smoke(tmp_path):
    out = tmp_path / "gpu_check.json"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks/gpu_check.py"),
            "--device",
            "cpu",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--img-size",
            "32",
            "--tiny",
            "--feature-batch-size",
            "16",
            "--json",
            str(out),
            "--workdir",
            str(tmp_path / "work"),
            "--peft-steps",
            "2",
            "--peft-repeats",
            "1",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    results = json.loads(out.read_text())
    for key in ("finetune", "finetune_bare", "features", "features_bare"):
        assert results[key] > 0, key
    assert "fine-tune, workflow" in result.stdout and "vs bare" in result.stdout
    # and the parameter-efficient part (benchmarks/peft_cost.py, in this process on CPU: no memory figures)
    peft = {row["method"]: row for row in results["peft"]["methods"]}
    assert list(peft) == ["full", "lora:2", "lora:8", "bitfit", "partial:3"]
    assert all(row["images_per_s"] > 0 and row["peak_mib"] is None for row in peft.values())
    assert "parameter-efficient fine-tuning vs Full" in result.stdout
    # the workflow's real outputs were written: the measured loop is the one rule finetune runs
    assert (tmp_path / "work/run/history.parquet").is_file() and (tmp_path / "work/dataset/manifest.parquet").is_file()
