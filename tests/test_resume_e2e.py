"""A fine-tune job SIGKILLed mid-epoch is retried by Snakemake, resumes from its checkpoint and ends identical."""

import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
RUN = "results/runs/isic/vit/full-cls/seed0"
OUTPUTS = ("model.safetensors", "history.parquet", "predictions.h5", "trajectory.h5")
EPOCHS = 6
pytestmark = pytest.mark.e2e


def snakemake_cmd(workdir: Path, *args: str) -> list[str]:
    targets = [f"{RUN}/{name}" for name in OUTPUTS]
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--cores",
        "1",
        *args,
        *targets,
    ]


def finetune_process(snakemake: psutil.Process) -> psutil.Process | None:
    for child in snakemake.children(recursive=True):
        try:
            if any("finetune" in part for part in child.cmdline()):
                return child
        except psutil.NoSuchProcess:
            continue
    return None


def kill_mid_epoch(snakemake: subprocess.Popen, checkpoint: Path, log: Path, timeout: float = 300) -> int:
    """SIGKILL the fine-tune once epoch 1 is checkpointed and a later epoch has started; return that epoch."""
    deadline = time.monotonic() + timeout
    parent = psutil.Process(snakemake.pid)
    while time.monotonic() < deadline:
        assert snakemake.poll() is None, "the run finished before it could be killed"
        job = finetune_process(parent)
        text = log.read_text() if log.exists() else ""
        started = [e for e in range(2, EPOCHS + 1) if f"epoch {e}/{EPOCHS}" in text]
        if job is not None and checkpoint.exists() and started:
            job.send_signal(signal.SIGKILL)
            return max(started)
        time.sleep(0.02)
    raise AssertionError("the fine-tune never reached its second epoch")


def test_sigkilled_finetune_resumes_and_matches(tmp_path, assert_same_run_outputs):
    config = yaml.safe_load((REPO / "tests/e2e/config.yaml").read_text())
    config["demo"]["options"]["isic"] = [400, 14, 28]  # epochs long enough to be caught in the middle
    config["train"].update(epochs=EPOCHS, batch_size=8)
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump(config))

    first = subprocess.run(snakemake_cmd(tmp_path), capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-4000:]
    shutil.copytree(tmp_path / RUN, tmp_path / "uninterrupted")

    log = tmp_path / "results/logs/finetune/isic/vit/full-cls/seed0.log"
    checkpoint = tmp_path / RUN / "checkpoint/last.pt"
    assert not checkpoint.parent.exists()  # a completed run leaves no checkpoint behind
    log.unlink()
    # --retries 1: what the Slurm profile does for a pre-empted GPU job.
    second = subprocess.Popen(
        snakemake_cmd(tmp_path, "--forcerun", "finetune", "--retries", "1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        killed_in = kill_mid_epoch(second, checkpoint, log)
        output, _ = second.communicate(timeout=600)
    finally:
        if second.poll() is None:
            second.kill()
    assert second.returncode == 0, output[-4000:]
    assert "Error in rule finetune" in output and "Trying to restart job" in output

    resumed = log.read_text()
    found = re.search(rf"resumed from the checkpoint of epoch (\d+)/{EPOCHS}", resumed)
    assert found, resumed[-2000:]
    # Killed while epoch `killed_in` ran: its predecessor's checkpoint (or its own, had it just finished) is used.
    assert killed_in - 1 <= int(found[1]) < EPOCHS
    assert "epoch 1:" not in resumed  # the finished epochs were not trained again
    assert not checkpoint.parent.exists()
    assert_same_run_outputs(tmp_path / "uninterrupted", tmp_path / RUN)
