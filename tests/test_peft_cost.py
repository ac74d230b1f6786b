"""benchmarks/peft_cost.py, the cost of LoRA, BitFit and partial fine-tuning against Full, runs on CPU with a tiny
model (a smoke test of its output, not of its timings): one process per method, each with its own peak RSS."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # five processes that each import torch, timm (and peft)

REPO = Path(__file__).resolve().parents[1]


def test_peft_cost_smoke(tmp_path):
    out = tmp_path / "peft_cost.json"
    command = [sys.executable, str(REPO / "benchmarks/peft_cost.py"), "--device", "cpu", "--tiny", "--threads", "1"]
    command += ["--img-size", "32", "--batch-size", "4", "--steps", "2", "--warmup", "1", "--repeats", "1"]
    result = subprocess.run([*command, "--json", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
    results = json.loads(out.read_text())
    rows = {row["method"]: row for row in results["methods"]}
    assert list(rows) == ["full", "lora:2", "lora:8", "bitfit", "partial:3"]
    full = rows["full"]
    assert full["trainable"] == full["parameters"] == full["optimizer_state"] / 2  # AdamW: two moments per value
    for method, row in rows.items():
        assert row["images_per_s"] > 0 and row["peak_mib"] > 0 and row["images_per_s_vs_full"] > 0, method
        assert row["optimizer_state"] == 2 * row["trainable"], method
        assert row["peak_mib"] >= row["start_mib"] and row["above_start_mib"] >= 0, method
        if method != "full":
            assert row["trainable"] < full["trainable"] and row["trainable_vs_full"] < 1, method
    # the head (7 x 33) is trained by every method: BitFit's backbone biases come on top of it
    assert rows["bitfit"]["trainable"] > 7 * 33
    assert rows["lora:2"]["trainable"] < rows["lora:8"]["trainable"]
    assert "| LoRA r=8 |" in result.stdout and "x Full" in result.stdout
