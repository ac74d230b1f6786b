"""The Slurm profile (slurm/config.yaml) as Snakemake reads it: GPU requests, site overrides, CPU jobs."""

import re
from pathlib import Path

import pytest
from snakemake.profiles import ProfileConfigFileParser

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "slurm/config.yaml"
SITE_VARS = ("REPDRIFT_SLURM_ACCOUNT", "REPDRIFT_SLURM_PARTITION", "REPDRIFT_SLURM_GPU_PARTITION", "REPDRIFT_GPU_MODEL")


def rule_blocks() -> dict[str, str]:
    """Each rule's text in rules/*.smk."""
    blocks = {}
    for path in (REPO / "rules").glob("*.smk"):
        for block in re.split(r"\n(?=rule )", path.read_text()):
            if block.startswith("rule "):
                blocks[block.split()[1].rstrip(":")] = block
    return blocks


def gpu_rules() -> set[str]:
    """Rules that declare `gpu=1` in rules/*.smk."""
    return {rule for rule, block in rule_blocks().items() if re.search(r"\bgpu=1\b", block)}


def rule_resources(rule: str) -> dict[str, int]:
    """The integer resources a rule declares (memory and time are the workflow's, not the site's)."""
    return {k: int(v) for k, v in re.findall(r"^        (\w+)=(\d+),$", rule_blocks()[rule], re.MULTILINE)}


def profile(monkeypatch, **site: str) -> dict:
    for var in SITE_VARS:
        monkeypatch.delenv(var, raising=False)
    for var, value in site.items():
        monkeypatch.setenv(var, value)
    with open(PROFILE) as stream:
        return dict(ProfileConfigFileParser().parse(stream))


def resources(parsed: dict, rule: str) -> dict[str, str]:
    prefix = f"{rule}:"
    return dict(item[len(prefix) :].split("=", 1) for item in parsed["set-resources"] if item.startswith(prefix))


def test_gpu_rules_ask_for_one_a100_in_the_gpu_partition(monkeypatch):
    parsed = profile(monkeypatch)
    assert parsed["executor"] == "slurm" and parsed["jobs"] == "60"
    assert parsed["configfile"] == "config/paper.yaml"  # `snakemake --profile slurm -j 60` runs the paper's study
    assert gpu_rules() == {
        "finetune",
        "linear_probe",
        "wiseft",
        "import_external",
        "pretrained_features",
        "attention_maps",
        "pretrain_demo",
    }
    for rule in gpu_rules():
        res = resources(parsed, rule)
        assert res["gpu_model"] == "a100" and res["slurm_partition"] == "gpu", rule
        assert "mem_mb" not in res and "runtime" not in res, rule  # the rule's own
        assert rule_resources(rule)["mem_mb"] >= 8000 and rule_resources(rule)["runtime"] >= 30, rule
    assert set(parsed["preemptible-rules"]) == gpu_rules() and int(parsed["preemptible-retries"]) >= 1
    threads = dict(item.split("=") for item in parsed["set-threads"])
    assert int(threads["finetune"]) >= 4 and int(threads["linear_probe"]) >= 4


def test_no_plugin_forbidden_or_risky_settings(monkeypatch):
    parsed = profile(monkeypatch)
    text = " ".join(str(v) for v in parsed.values())
    assert "slurm_extra" not in text  # the plugin refuses --gres/--gpus/--partition there
    assert not any(re.match(r"\w+:tasks=", item) for item in parsed["set-resources"])  # becomes --ntasks-per-gpu


def test_site_settings_come_from_the_environment(monkeypatch):
    default = profile(monkeypatch)
    assert not any(item.startswith(("slurm_account=", "slurm_partition=")) for item in default["default-resources"])
    site = profile(
        monkeypatch,
        REPDRIFT_SLURM_ACCOUNT="lab42",
        REPDRIFT_SLURM_PARTITION="short",
        REPDRIFT_SLURM_GPU_PARTITION="ampere",
        REPDRIFT_GPU_MODEL="a100_80g",
    )
    assert {"slurm_account=lab42", "slurm_partition=short"} <= set(site["default-resources"])
    assert resources(site, "finetune")["slurm_partition"] == "ampere"
    assert resources(site, "linear_probe")["gpu_model"] == "a100_80g"


def test_per_run_measurements_are_one_cpu_job_with_memory_for_the_knn_bank(monkeypatch):
    parsed = profile(monkeypatch)
    assert "groups" not in parsed  # rule measure is already one job per run
    for rule in ("measure", "knn_pretrained"):
        assert not resources(parsed, rule), rule
        assert rule_resources(rule)["mem_mb"] >= 16000, rule  # a 150,000-image bank in memory


@pytest.mark.parametrize("rule", ["aggregate", "similarity_space", "correlation", "paper_tables", "findings"])
def test_table_rules_run_locally(rule):
    snakefile = (REPO / "Snakefile").read_text()
    local = snakefile.split("localrules:", 1)[1]
    assert f"    {rule},\n" in local
