"""The local Slurm harness (slurm_cluster.py) starts, schedules fake A100s, refuses what it lacks, and cleans up.

Skips where Slurm cannot run (not root, cannot install); REPDRIFT_REQUIRE_SLURM=1 (CI) turns the skip into a failure.
"""

import subprocess
from pathlib import Path

import pytest
from slurm_cluster import LocalSlurm, require_slurm

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    require_slurm()
    with LocalSlurm(tmp_path_factory.mktemp("slurm")) as cluster:
        yield cluster


def sbatch(cluster: LocalSlurm, *args: str) -> subprocess.CompletedProcess:
    # --chdir: default slurm-<id>.out files land in the cluster's folder, not the repository.
    return subprocess.run(
        ["sbatch", "--parsable", f"--chdir={cluster.root}", *args],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_gpu_job_runs_on_a_fake_a100(slurm):
    out = slurm.root / "gpu.out"
    submitted = sbatch(slurm, "-p", "gpu", "--gpus=a100:1", "-o", str(out), "--wrap", "echo $CUDA_VISIBLE_DEVICES")
    assert submitted.returncode == 0, submitted.stderr
    job = slurm.wait(submitted.stdout.strip().split(";")[0])
    assert (job["JobState"], job["ExitCode"], job["Partition"]) == ("COMPLETED", "0:0", "gpu")
    assert "gpu:a100:1" in job.get("TresPerJob", "") + job["TRES"]
    assert out.read_text().strip().isdigit()  # Slurm handed the job one device index


@pytest.mark.parametrize("gpus", ["h100:1", "a100:3"])
def test_impossible_gpu_request_is_refused_at_submission(slurm, gpus):
    refused = sbatch(slurm, "-p", "gpu", f"--gpus={gpus}", "--wrap", "true")
    assert refused.returncode != 0, f"--gpus={gpus} accepted as job {refused.stdout.strip()}"


def test_exit_stops_daemons_and_jobs_but_not_a_shared_munged(slurm, tmp_path):
    with LocalSlurm(tmp_path, gpus=1) as inner:  # a second cluster beside the module's one: own ports, shared munged
        pids = inner.pids
        assert {"slurmctld", "slurmd"} <= set(pids)
        assert sbatch(inner, "--wrap", "sleep 300").returncode == 0
        inner.wait_until(lambda: any(j["JobState"] == "RUNNING" for j in inner.jobs()), "the sleep job", 30)
    for name, pid in pids.items():
        assert not Path(f"/proc/{pid}").exists(), f"{name} (pid {pid}) still running"
    assert inner.job_steps() == []
    # The module's cluster, and the munged it may have started, still work.
    assert subprocess.run(["srun", "-t", "1", "true"], env=slurm.env, timeout=30).returncode == 0
