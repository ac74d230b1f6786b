"""A small study through `snakemake --profile slurm` on a real one-node Slurm with fake A100s.

It runs the repository's own profile with only the overrides a 2-core test machine needs, then checks what Slurm
was asked for (GPU rules: one a100 in the gpu partition; the per-run measurements: one job per run; table and
figure rules: never submitted) and that every output equals the same study run locally.
"""

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import polars as pl
import pytest
import yaml
from safetensors.numpy import load_file
from slurm_cluster import LocalSlurm, require_slurm

REPO = Path(__file__).resolve().parents[1]
GPU_RULES = {"finetune", "linear_probe", "pretrained_features", "attention_maps", "pretrain_demo"}
LOCAL_RULES = {"aggregate", "similarity_space", "correlation", "paper_tables", "findings"}
PREEMPTED_RUN = "results/runs/isic/vit/full-cls/seed0"
TIMING = {"seconds", "images_per_s"}  # wall-clock columns of a training history
pytestmark = [pytest.mark.e2e, pytest.mark.slurm]


def small_study() -> dict:
    """The e2e study cut to one backbone: 3 runs, every GPU rule, the per-run measurements and the analyses."""
    config = yaml.safe_load((REPO / "tests/e2e/config.yaml").read_text())
    config["datasets"] = {name: config["datasets"][name] for name in ("natural", "isic")}
    config["backbones"] = {"vit": config["backbones"]["vit"]}
    # Five epochs of ~0.5 s: seconds of room to pre-empt a fine-tune after its first checkpoint, before its end.
    config["demo"]["options"]["isic"] = [800, 14, 28]
    config["train"]["epochs"] = 5
    config["grids"] = {
        "table1": {"backbones": ["vit"], "datasets": ["isic"], "methods": ["full", "linear"], "pools": ["cls"]},
        "similarity": {"backbones": ["vit"], "datasets": ["isic"], "seeds": [0, 1]},
    }
    config["analysis"] = {"attention": {"pools": ["cls"]}}  # no mean-pool run in this study
    return config


def study_dir(root: Path) -> Path:
    (root / "config").mkdir(parents=True)
    (root / "config/config.yaml").write_text(yaml.safe_dump(small_study()))
    shutil.copytree(REPO / "slurm", root / "slurm")  # the profile as users have it: ./slurm beside the config
    return root


def snakemake(workdir: Path, *args: str, env=None) -> subprocess.Popen:
    """Start Snakemake in `workdir`; its output goes to workdir/snakemake.out (a pipe could fill and block it)."""
    with open(workdir / "snakemake.out", "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), *args],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )


def finish(run: subprocess.Popen, workdir: Path) -> str:
    run.wait(timeout=1800)
    output = (workdir / "snakemake.out").read_text()
    assert run.returncode == 0, f"snakemake failed in {workdir}:\n{output[-8000:]}"
    return output


def preempt(cluster: LocalSlurm, run: subprocess.Popen, workdir: Path) -> dict:
    """Cancel the Slurm job of one fine-tune once its first epoch is checkpointed, as pre-emption would."""
    checkpoint = workdir / PREEMPTED_RUN / "checkpoint/last.pt"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        assert run.poll() is None, "Snakemake finished before the fine-tune could be pre-empted"
        if checkpoint.exists():
            running = [
                job
                for job in cluster.jobs()
                if job["JobState"] == "RUNNING"
                and job.get("Comment", "").startswith("rule_finetune_wildcards_isic_vit_full_cls_0")
            ]
            if running:
                subprocess.run(["scancel", running[0]["JobId"]], env=cluster.env, check=True, timeout=30)
                return running[0]
        time.sleep(0.05)
    raise AssertionError(f"{checkpoint} never appeared")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    require_slurm()
    # Enough declared CPUs and memory for the profile's real requests (Slurm does not enforce them here).
    with LocalSlurm(tmp_path_factory.mktemp("cluster"), cpus=32, memory_mb=256_000, gpus=2) as slurm:
        yield slurm


@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory):
    local = study_dir(tmp_path_factory.mktemp("local"))
    finish(snakemake(local, "--cores", "2"), local)
    on_slurm = study_dir(tmp_path_factory.mktemp("slurm"))
    one_thread = [f"{rule}=1" for rule in sorted(GPU_RULES)]  # 2 cores here; the local run's threads, too
    run = snakemake(
        on_slurm,
        "--profile",
        "slurm",
        "--jobs",
        "4",
        "--configfile",
        "config/config.yaml",  # the small study, not the profile's paper.yaml
        "--set-threads",
        *one_thread,
        "--slurm-status-command",
        "squeue",  # no accounting daemon: finished jobs are seen through MinJobAge
        "--slurm-init-seconds-before-status-checks",
        "2",
        env=cluster.env,
    )
    try:
        preempted = preempt(cluster, run, on_slurm)
        output = finish(run, on_slurm)
    finally:
        if run.poll() is None:
            run.kill()
    workflow_jobs = [job for job in cluster.jobs() if job.get("Comment", "").startswith("rule_")]  # not the harness's
    return local, on_slurm, output, workflow_jobs, preempted


def test_preempted_finetune_was_retried_and_resumed(runs):
    _, on_slurm, output, jobs, preempted = runs
    finetunes = [job for job in jobs if job["Comment"] == preempted["Comment"]]
    assert [job["JobState"] for job in finetunes] == ["CANCELLED", "COMPLETED"], finetunes
    assert "Trying to restart job" in output
    log = (on_slurm / "results/logs/finetune/isic/vit/full-cls/seed0.log").read_text()
    assert re.search(r"resumed from the checkpoint of epoch [1-4]/5", log), log[-2000:]
    # ...and test_every_output_matches_the_local_run shows it ended where the uninterrupted local run did.


def rule_of(job: dict) -> str:
    # The plugin's comment: rule_<rule or group>_wildcards_<...>
    return job["Comment"].removeprefix("rule_").split("_wildcards_")[0]


def test_gpu_rules_were_submitted_with_the_gpu_request(runs):
    jobs, preempted = runs[3], runs[4]
    states = {job["JobId"]: job["JobState"] for job in jobs}
    assert states.pop(preempted["JobId"]) == "CANCELLED"
    assert set(states.values()) == {"COMPLETED"}, [(rule_of(j), j["JobState"]) for j in jobs]
    submitted = {rule_of(job) for job in jobs}
    assert GPU_RULES <= submitted
    for job in jobs:
        gpu_request = job.get("TresPerJob", "") + job.get("TresPerNode", "")
        if rule_of(job) in GPU_RULES:
            assert "gres:gpu:a100:1" in gpu_request and job["Partition"] == "gpu", job
        else:
            assert "gpu" not in gpu_request and job["Partition"] == "cpu", job


def test_measurements_are_one_job_per_run_and_tables_local(runs):
    jobs = runs[3]
    submitted = [rule_of(job) for job in jobs]
    assert LOCAL_RULES.isdisjoint(submitted) and "figures" not in submitted
    assert submitted.count("measure") == 3  # one job per run holds its measurements
    for job in jobs:
        if rule_of(job).startswith("run-"):  # the four run side by side: their CPUs and memory add up
            assert (job["NumCPUs"], job["MinMemoryNode"], job["Partition"]) == ("4", "56000M", "cpu"), job


def test_every_output_matches_the_local_run(runs):
    local, on_slurm = runs[:2]
    files = {p.relative_to(local) for p in (local / "results").rglob("*") if p.is_file() and "logs" not in p.parts}
    assert files == {
        p.relative_to(on_slurm) for p in (on_slurm / "results").rglob("*") if p.is_file() and "logs" not in p.parts
    }
    compared = 0
    for path in sorted(files):
        a, b = local / path, on_slurm / path
        if path.suffix == ".parquet":
            ta, tb = table(a, local), table(b, on_slurm)
            assert ta.equals(tb), path
        elif path.suffix == ".h5":
            ha, hb = h5_arrays(a), h5_arrays(b)
            assert ha.keys() == hb.keys(), path
            for key, value in ha.items():
                np.testing.assert_array_equal(value, hb[key], err_msg=f"{path}:{key}")
        elif path.suffix == ".safetensors":
            ta, tb = load_file(a), load_file(b)
            assert ta.keys() == tb.keys() and all(np.array_equal(ta[k], tb[k]) for k in ta), path
        elif path.suffix in (".csv", ".md"):
            assert a.read_text() == b.read_text(), path
        else:
            continue  # figures, HTML and images: rendered from the tables compared here
        compared += 1
    assert compared >= 30


def table(path: Path, workdir: Path) -> pl.DataFrame:
    """A parquet table without wall-clock columns, its paths made relative to the study folder."""
    frame = pl.read_parquet(path)
    frame = frame.drop(sorted(TIMING & set(frame.columns)))
    return frame.with_columns(pl.col(pl.String).str.replace(f"{workdir}/", "", literal=True))


def h5_arrays(path: Path) -> dict[str, np.ndarray]:
    arrays = {}
    with h5py.File(path) as h5:
        h5.visititems(lambda name, obj: arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return arrays
