"""A real one-node Slurm cluster on localhost with fake `gpu:a100` GRES, for integration tests.

Configured to run without systemd or cgroups (proctrack/linuxproc, task/none). Needs root (SlurmUser=root, munged
runs as user munge, fake GPUs are device nodes) and Debian's `munge slurmctld slurmd slurm-client`. All Slurm files
live under `root`; clients find them through SLURM_CONF (use `LocalSlurm.env` for subprocesses).

    with LocalSlurm(tmp_path) as slurm:
        subprocess.run(["sbatch", "-p", "gpu", "--gpus=a100:1", "--wrap", "true"], env=slurm.env, check=True)
        slurm.jobs()
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ["munge", "slurmctld", "slurmd", "slurm-client"]
# Daemons live in /usr/sbin, which is not on every PATH.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
CLIENTS = ["srun", "sbatch", "squeue", "scontrol", "scancel", "sinfo", "sacct", "sacctmgr", "sshare"]
MUNGE_RUN = Path("/run/munge")
MUNGE_KEY = Path("/etc/munge/munge.key")
TERMINAL_STATES = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
}


class SlurmUnavailable(RuntimeError):
    """Slurm cannot be installed or started here (tests skip on it)."""


def require_slurm() -> None:
    """Install Slurm if needed, else skip the calling test; REPDRIFT_REQUIRE_SLURM=1 (CI) makes that a failure."""
    import pytest

    try:
        ensure_installed()
    except SlurmUnavailable as err:
        if os.environ.get("REPDRIFT_REQUIRE_SLURM") == "1":
            pytest.fail(f"REPDRIFT_REQUIRE_SLURM=1 but {err}")
        pytest.skip(str(err))


def _which(name: str) -> str | None:
    return shutil.which(name, path=SEARCH_PATH)


def ensure_installed() -> None:
    """Install the Slurm and munge packages if missing; raise SlurmUnavailable where that is impossible.

    Also raises when not root: the cluster itself needs root even when the packages are there.
    """
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        raise SlurmUnavailable("the local Slurm cluster needs root (SlurmUser=root, munged as user munge, mknod)")
    missing = [tool for tool in ("sbatch", "slurmctld", "slurmd", "munged") if _which(tool) is None]
    if not missing:
        return
    if _which("apt-get") is None:
        raise SlurmUnavailable(f"{', '.join(missing)} missing and there is no apt-get to install {PACKAGES}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SlurmUnavailable(f"{' '.join(cmd)} failed ({proc.returncode}):\n{_tail(proc.stdout + proc.stderr)}")
    still = [tool for tool in ("sbatch", "slurmctld", "slurmd", "munged") if _which(tool) is None]
    if still:
        raise SlurmUnavailable(f"installed {PACKAGES} but {', '.join(still)} still missing")


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _file_tail(path: Path, lines: int = 30) -> str:
    try:
        return f"--- {path} ---\n{_tail(path.read_text(errors='replace'), lines)}"
    except OSError:
        return f"--- {path} (absent) ---"


def _free_ports(n: int) -> list[int]:
    """n distinct free TCP ports: all sockets stay open until every port is chosen, so none repeats."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("", 0))  # slurmctld/slurmd bind INADDR_ANY, so test that
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _munge_works() -> bool:
    if _which("munge") is None or _which("unmunge") is None:
        return False
    try:
        cred = subprocess.run(["munge", "-n"], capture_output=True, timeout=5)
        if cred.returncode != 0:
            return False
        return subprocess.run(["unmunge"], input=cred.stdout, capture_output=True, timeout=5).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def parse_jobs(text: str) -> list[dict[str, str]]:
    """Parse `scontrol show job -o` (one job a line, `Key=Value` fields).

    A field starts at whitespace followed by `Key=`; keys look like `TresPerJob`, `Socks/Node`, `ReqB:S:C:T`.
    Values with spaces (Command, Comment, WorkDir) survive unless they contain ` Word=` themselves.
    """
    jobs = []
    for line in text.splitlines():
        line = line.strip()
        if not line or not line.startswith("JobId="):  # also skips "No jobs in the system"
            continue
        fields = re.split(r"\s+(?=[A-Za-z][\w/:]*=)", line)
        jobs.append(dict(field.split("=", 1) for field in fields))
    return jobs


class LocalSlurm:
    """Context manager: munged (unless one already answers), slurmctld and slurmd on localhost.

    Node `localhost` has `cpus` CPUs, `memory_mb` MB and `gpus` fake `gpu:a100` devices, whatever the machine has
    (SlurmdParameters=config_overrides; without cgroups Slurm enforces no memory). Partitions: `cpu` (default)
    and `gpu`. Finished jobs stay visible to squeue/scontrol for `min_job_age` seconds (there is no accounting).
    """

    def __init__(
        self,
        root: Path,
        cpus: int = 8,
        memory_mb: int = 64000,
        gpus: int = 2,
        min_job_age: int = 600,
        start_timeout: float = 90.0,
    ):
        self.root = Path(root).resolve()
        self.cpus, self.memory_mb, self.gpus, self.min_job_age = cpus, memory_mb, gpus, min_job_age
        self.start_timeout = start_timeout
        self.conf = self.root / "etc" / "slurm.conf"
        self.env = {
            k: v
            for k, v in os.environ.items()
            # An enclosing Slurm job's variables would make srun/sbatch act inside that job.
            if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_"))
        }
        self.env["SLURM_CONF"] = str(self.conf)
        # Client wrappers first on PATH: Snakemake's jobstep plugin drops SLURM_* (SLURM_CONF too) before its
        # nested srun, which on a real cluster finds /etc/slurm/slurm.conf; here it must find ours.
        self.env["PATH"] = os.pathsep.join([str(self.root / "bin"), SEARCH_PATH])
        self.procs: dict[str, subprocess.Popen] = {}  # name -> daemon we started, in start order
        self.ctld_port = self.slurmd_port = 0

    # -- files ---------------------------------------------------------------------------------------------

    def _write_config(self) -> None:
        for sub in ("etc", "state", "spool", "log", "dev", "bin"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        for client in CLIENTS:
            if real := _which(client):
                wrapper = self.root / "bin" / client
                wrapper.write_text(f'#!/bin/sh\nSLURM_CONF="{self.conf}" exec {real} "$@"\n')
                wrapper.chmod(0o755)
        devices = []
        for i in range(self.gpus):
            # Trailing digits in the device name make Slurm set CUDA_VISIBLE_DEVICES per job; c 1 3 is /dev/null.
            dev = self.root / "dev" / f"nvidia{i}"
            if not dev.exists():
                os.mknod(dev, 0o666 | 0o020000, os.makedev(1, 3))
            devices.append(dev)
        (self.conf.parent / "gres.conf").write_text(
            "AutoDetect=off\n" + "".join(f"Name=gpu Type=a100 File={dev}\n" for dev in devices)
        )
        self.ctld_port, self.slurmd_port = _free_ports(2)
        r, log = self.root, self.root / "log"
        gres = f" Gres=gpu:a100:{self.gpus}" if self.gpus else ""
        self.conf.write_text(f"""\
ClusterName=repdrift
SlurmctldHost=localhost
SlurmctldPort={self.ctld_port}
SlurmdPort={self.slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
# Debian's default mail program is absent; slurmctld logs an error at each start without this.
MailProg=/bin/true
# No systemd, no cgroups:
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, one job takes the node's whole memory and jobs run one at a time.
DefMemPerCPU={max(1, self.memory_mb // max(1, self.cpus))}
# The node may declare more CPUs/memory than the machine has.
SlurmdParameters=config_overrides
ReturnToService=2
# No accounting daemon: finished jobs must stay visible to squeue/scontrol.
MinJobAge={self.min_job_age}
GresTypes=gpu
StateSaveLocation={r / "state"}
SlurmdSpoolDir={r / "spool"}
SlurmctldPidFile={r / "slurmctld.pid"}
SlurmdPidFile={r / "slurmd.pid"}
SlurmctldLogFile={log / "slurmctld.log"}
SlurmdLogFile={log / "slurmd.log"}
NodeName=localhost NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb}{gres} State=UNKNOWN
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost MaxTime=INFINITE State=UP
""")

    # -- daemons -------------------------------------------------------------------------------------------

    def _spawn(self, name: str, cmd: list[str], **kwargs) -> subprocess.Popen:
        out = open(self.root / "log" / f"{name}.out", "ab")  # errors before the log file opens land here
        try:
            # Own session: a Ctrl-C in pytest reaches us, and __exit__ stops the daemons in order.
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.root,
                start_new_session=True,
                **kwargs,
            )
        finally:
            out.close()
        self.procs[name] = proc
        return proc

    def _start_munge(self) -> None:
        if _munge_works():
            return  # someone else's munged: use it, never stop it
        user = pwd.getpwnam("munge")
        if not MUNGE_KEY.exists():
            MUNGE_KEY.parent.mkdir(parents=True, exist_ok=True)
            if _which("mungekey"):
                subprocess.run(
                    [_which("mungekey"), "--create", f"--keyfile={MUNGE_KEY}"], check=True, capture_output=True
                )
            else:
                MUNGE_KEY.write_bytes(os.urandom(1024))
        # munged refuses keys and directories that others could read or write.
        for path in (MUNGE_RUN, Path("/var/lib/munge"), Path("/var/log/munge")):
            path.mkdir(parents=True, exist_ok=True)
        for path, mode in (
            (MUNGE_KEY.parent, 0o700),
            (MUNGE_KEY, 0o400),
            (MUNGE_RUN, 0o755),
            (Path("/var/lib/munge"), 0o711),
            (Path("/var/log/munge"), 0o700),
        ):
            os.chown(path, user.pw_uid, user.pw_gid)
            os.chmod(path, mode)
        # --force: a munged that died leaves its socket behind; we know none answers.
        proc = self._spawn(
            "munged",
            [_which("munged"), "--foreground", "--force"],
            user=user.pw_uid,
            group=user.pw_gid,
            extra_groups=[],
        )
        self.wait_until(_munge_works, "munged", 15)
        (self.root / "munged.pid").write_text(f"{proc.pid}\n")

    def _srun_true(self) -> bool:
        try:
            return (
                subprocess.run(["srun", "-t", "1", "true"], env=self.env, capture_output=True, timeout=15).returncode
                == 0
            )
        except subprocess.TimeoutExpired:
            return False

    def wait_until(self, ready, what: str, timeout: float) -> None:
        """Poll ready() until true; raise with the daemons' log tails on timeout or when one of ours died."""
        deadline = time.monotonic() + timeout
        while True:
            dead = [f"{name} exited with {p.returncode}" for name, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(self._report(f"waiting for {what}: {', '.join(dead)}"))
            if ready():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(self._report(f"{what} not ready after {timeout:.0f} s"))
            time.sleep(0.5)

    def _report(self, message: str) -> str:
        parts = [f"local Slurm cluster in {self.root}: {message}"]
        for name in ("slurmctld", "slurmd", "munged"):
            log, out = self.root / "log" / f"{name}.log", self.root / "log" / f"{name}.out"
            # A daemon writes to .out only what precedes its log file (e.g. config errors), then to both.
            if log.exists() and log.stat().st_size:
                parts.append(_file_tail(log))
            elif out.exists():
                parts.append(_file_tail(out))
        return "\n".join(parts)

    def start(self) -> "LocalSlurm":
        ensure_installed()
        self._write_config()
        self._start_munge()
        self._spawn("slurmctld", [_which("slurmctld"), "-D", "-c", "-f", str(self.conf)])
        self._spawn("slurmd", [_which("slurmd"), "-D", "-N", "localhost", "-f", str(self.conf)])
        # sinfo can say idle before slurmd has registered; a job step that runs is the real test.
        self.wait_until(self._srun_true, "`srun -t 1 true`", self.start_timeout)
        return self

    def _ours(self, pid: int) -> bool:
        """A slurmstepd left by our slurmd holds our log file or spool directory open."""
        try:
            return any(
                os.readlink(f"/proc/{pid}/fd/{fd}").startswith(str(self.root)) for fd in os.listdir(f"/proc/{pid}/fd")
            )
        except OSError:
            return False

    def job_steps(self) -> list[int]:
        """Pids of this cluster's live slurmstepd processes (zombies excluded)."""
        pids = (int(p) for p in os.listdir("/proc") if p.isdigit())
        return [pid for pid in pids if _comm(pid) == "slurmstepd" and self._ours(pid)]

    def stop(self) -> None:
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            try:
                live = [j["JobId"] for j in self.jobs() if j.get("JobState") not in TERMINAL_STATES]
                if live:
                    subprocess.run(["scancel", *live], env=self.env, capture_output=True, timeout=15)
                    deadline = time.monotonic() + 15
                    while time.monotonic() < deadline and (
                        any(j.get("JobState") not in TERMINAL_STATES for j in self.jobs()) or self.job_steps()
                    ):
                        time.sleep(0.3)
            except (subprocess.SubprocessError, OSError, RuntimeError):
                pass  # stopping the daemons must go on regardless
        for name in reversed(list(self.procs)):  # slurmd, slurmctld, then our munged
            proc = self.procs[name]
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        self.procs.clear()
        for pid in self.job_steps():  # job steps that outlived scancel
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass

    # -- queries -------------------------------------------------------------------------------------------

    @property
    def pids(self) -> dict[str, int]:
        """Daemons this instance started and still runs: munged (only if it started one), slurmctld, slurmd."""
        return {name: p.pid for name, p in self.procs.items() if p.poll() is None}

    def jobs(self) -> list[dict[str, str]]:
        """Every job slurmctld still knows (finished ones for min_job_age s), from `scontrol show job -o`."""
        proc = subprocess.run(
            ["scontrol", "show", "job", "-o"], env=self.env, capture_output=True, text=True, timeout=15
        )
        if proc.returncode != 0:
            raise RuntimeError(f"scontrol show job failed ({proc.returncode}): {proc.stderr.strip()}")
        return parse_jobs(proc.stdout)

    def job(self, job_id: int | str) -> dict[str, str]:
        return next(j for j in self.jobs() if j["JobId"] == str(job_id))

    def wait(self, job_id: int | str, timeout: float = 60.0) -> dict[str, str]:
        """Poll until the job reaches a terminal state; return its fields."""
        deadline = time.monotonic() + timeout
        while (job := self.job(job_id))["JobState"] not in TERMINAL_STATES:
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['JobState']} after {timeout:.0f} s")
            time.sleep(0.3)
        return job

    def __enter__(self) -> "LocalSlurm":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
