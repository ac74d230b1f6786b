"""config/paper.yaml: valid, complete, on its own (no demo keys leak in), and its DAG is the paper's full grid.

The dry run points the dataset roots at tiny fixtures in the real layouts (nothing is read or downloaded).
"""

import itertools
import re
import subprocess
import sys

import pytest
import yaml
from paper_fixtures import PAPER, REPO, paper_overrides
from snakemake.utils import validate

from repdrift.data import build_dataset

pytestmark = pytest.mark.slow  # starts Snakemake on the paper's grid

SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


@pytest.fixture(scope="module")
def paper():
    config = yaml.safe_load(PAPER.read_text())
    validate(config, str(SCHEMA))  # fills defaults in place
    return config


def paper_dry_run(folder, roots, *args: str) -> subprocess.CompletedProcess:
    """`snakemake -n` of the paper's config with the fixture roots, in `folder`/work."""
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(folder / "work"),
        "--configfile",
        str(PAPER),
        str(roots),
        "-n",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("paper")
    roots = paper_overrides(folder)
    result = paper_dry_run(folder, roots, "--quiet", "rules")
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout + result.stderr, re.MULTILINE))
    return {rule: int(n) for rule, n in counts.items()}, folder, roots


def grid_runs(config):
    """Every run; WiSE-FT is one run per a, LoRA one per rank."""
    sweeps = {
        "wiseft": [f"wiseft{a}" for a in config["preserving"]["wiseft"]["alphas"]],
        "lora": [f"lora{r}" for r in config["preserving"]["lora"]["ranks"]],
    }
    return {
        run
        for grid in config["grids"].values()
        for method in grid["methods"]
        for variant in sweeps.get(method, [method])
        for run in itertools.product(grid["datasets"], grid["backbones"], [variant], grid["pools"], grid["seeds"])
    }


def test_paper_grid(paper):
    assert paper["demo"]["enabled"] is False
    assert paper["train"] | {"epochs": 20, "batch_size": 32, "lr": 6e-4} == paper["train"]
    assert set(paper["backbones"]) == {"vit_b16", "openclip_b16", "dinov2_b14"}
    kinds = {entry["kind"] for entry in paper["datasets"].values()}
    assert kinds == {"isic2018", "aptos2019", "medfm_chest", "medfm_colon", "medfm_endo", "imagenet"}
    assert paper["datasets"][paper["knn"]["dataset"]]["options"]["bank_per_class"] == 100
    assert len(paper["grids"]["similarity"]["seeds"]) == 20
    # Table 1: 3 x 5 x {full, linear} x {cls, mean}; Scratch: 5 x 2 pools; similarity: 3 x 20 seeds, of which
    # seed 0 (full, cls) is a Table 1 run.
    paper_grids = {k: v for k, v in paper["grids"].items() if k not in ("preserving", "peft")}
    assert len(grid_runs({**paper, "grids": paper_grids})) == 127
    # Preserving: 3 x 5 seeds x (l2sp, lpft, rift, feature_cka + 3 WiSE-FT a) and 3 x 4 Linear probes (seeds 1-4;
    # seed 0 is Table 1's); PEFT: 3 x 5 seeds x (LoRA at 2 ranks, BitFit, partial); their Full runs are similarity
    # runs.
    assert len(grid_runs(paper)) == 127 + 3 * 5 * (4 + 3) + 3 * 4 + 3 * 5 * 4


def test_every_dataset_reads_its_fixture(tmp_path):
    roots = yaml.safe_load(paper_overrides(tmp_path).read_text())["datasets"]
    for name, entry in yaml.safe_load(PAPER.read_text())["datasets"].items():
        options = entry.get("options", {}) | roots[name].get("options", {})
        dataset = build_dataset(entry["kind"], roots[name]["root"], **options)
        assert {"train", "test"} <= set(dataset.manifest["split"]), name


def test_dry_run_lists_the_full_grid(paper, dry_run):
    counts, _, _ = dry_run
    runs = grid_runs(paper)
    linear = sum(method == "linear" for _, _, method, _, _ in runs)
    wiseft = sum(method.startswith("wiseft") for _, _, method, _, _ in runs)
    backbones, targets = len(paper["backbones"]), 5
    per_run = {
        "fetch_checkpoint": backbones,
        "prepare_dataset": targets + 1,
        "finetune": len(runs) - linear - wiseft,  # with the final model's k-NN features
        "wiseft": 3 * 5,  # one job per LP-FT run of the preserving grid, every a
        "linear_probe": linear,  # a linear probe's features are the pre-trained model's
        "pretrained_features": backbones * (targets + 1),  # the k-NN bank and queries, each target's CKA sample
        "measure": len(runs),
        "knn_pretrained": backbones * 2,
    }
    assert {rule: counts.get(rule) for rule in per_run} == per_run
    assert counts["finetune"] + counts["linear_probe"] + wiseft == 304 and counts["aggregate"] == counts["all"] == 1
    assert "make_demo_data" not in counts and "pretrain_demo" not in counts  # nothing of the demo leaks in
    assert counts["total"] == sum(counts.values()) - counts["total"]


def test_gpu_jobs_read_the_fetched_copies(dry_run):
    _, folder, roots = dry_run
    hub = {
        "vit_b16": "model.safetensors",
        "openclip_b16": "open_clip_model.safetensors",
        "dinov2_b14": "model.safetensors",
    }
    targets = [f"results/runs/isic2018/{backbone}/full-cls/seed0/model.safetensors" for backbone in hub]
    result = paper_dry_run(folder, roots, *targets)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    jobs = re.findall(r"^rule (\w+):\n    input: (.*)$", result.stdout, re.MULTILINE)
    finetune_inputs = [inputs for rule, inputs in jobs if rule == "finetune"]
    assert len(finetune_inputs) == 3
    for backbone, name in hub.items():
        assert any(f"results/pretrained/{backbone}/hub/{name}," in inputs for inputs in finetune_inputs), backbone
