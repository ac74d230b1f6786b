"""Config cross-references are checked before any job runs, with the key named."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from repdrift.models.registry import BACKBONE_KEYS, PASSED_KEYS

pytestmark = pytest.mark.slow  # starts Snakemake dry runs

REPO = Path(__file__).resolve().parents[1]


def dry_run(tmp_path: Path, config: dict) -> subprocess.CompletedProcess:
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump(config))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(tmp_path),
            "-n",
            "--quiet",
        ],
        capture_output=True,
        text=True,
    )


@pytest.fixture
def config():
    return yaml.safe_load((REPO / "tests/e2e/config.yaml").read_text())


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda c: c["grids"]["similarity"].update(datasets=["isic", "colon"]),
            "grids.similarity.datasets: the similarity grid (analysis.similarity_grid) must have one dataset",
        ),
        (
            lambda c: c["grids"]["similarity"].update(methods=["full", "linear"]),
            "grids.similarity.methods: the similarity grid (analysis.similarity_grid) must have one method",
        ),
        (
            lambda c: c.update(analysis={"similarity_grid": "nope"}),
            "analysis.similarity_grid: 'nope' is not a key of `grids`",
        ),
        (lambda c: c.update(cka={"estimator": "unbiased"}), "estimator"),
        (lambda c: c.update(analysis={"attention": {"seed": 3}}), "analysis.attention: runs isic/clip/full-cls/seed3"),
        (
            lambda c: c["datasets"]["colon"].update(options={"splt": "paper"}),
            "datasets.colon.options.splt: not an option of kind medfm_colon (options: split, classes)",
        ),
        # The similarity-preserving methods: an unknown one, a negative strength, a WiSE-FT a outside [0, 1],
        # WiSE-FT without the Full runs it interpolates.
        (lambda c: c["grids"]["tasks"].update(methods=["full", "l2-sp"]), "'l2-sp' is not one of"),
        (lambda c: c.update(similarity={"measures": ["procrustes", "cca"]}), "'cca' is not one of"),
        (lambda c: c.update(similarity={"mutual_knn_k": 12}), "similarity.mutual_knn_k: 12 neighbours need more"),
        (lambda c: c.update(preserving={"rift": {"strength": -1}}), "On instance['preserving']['rift']['strength']"),
        (lambda c: c.update(preserving={"wiseft": {"alphas": [0.5, 1.5]}}), "1.5 is greater than the maximum of 1"),
        (lambda c: c.update(preserving={"l2sp": {"alpah": 1}}), "preserving.l2sp.alpah: unknown key"),
        (
            lambda c: c["grids"]["tasks"].update(methods=["scratch", "wiseft"]),
            "grids.tasks.methods: wiseft interpolates each Full run of the grid; add full",
        ),
    ],
)
def test_bad_analysis_config_is_named_before_any_job(tmp_path, config, change, message):
    change(config)
    result = dry_run(tmp_path, config)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr, (result.stdout + result.stderr)[-2000:]


def test_unknown_backbone_key_is_named_in_one_line(tmp_path, config):
    config["backbones"]["vit"]["img_sise"] = 48  # a typo of img_size: an error, not a silently ignored key
    result = dry_run(tmp_path, config)
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if "img_sise" in line]
    assert lines == [
        (
            "  backbones.vit.img_sise: unknown key, did you mean img_size? (valid keys: library, "
            "arch, paradigm, img_size, mean, std, interpolation, crop_pct, model_kwargs, model_cfg, "
            "weights)"
        )
    ], lines


def test_the_schema_lists_the_keys_a_backbone_entry_takes():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    keys = schema["properties"]["backbones"]["additionalProperties"]["properties"]
    # `name` is the entry's config key (rules/common.smk backbone_cfg), never set in the entry.
    assert set(keys) == set(BACKBONE_KEYS) - {"name"} | set(PASSED_KEYS)


def test_the_e2e_config_is_valid(tmp_path, config):
    assert dry_run(tmp_path, config).returncode == 0


def test_the_schema_lists_the_options_of_every_preserving_method():
    from repdrift.preserving import OPTIONS

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())["properties"]["preserving"]
    declared = {method: set(entry["properties"]) for method, entry in schema["properties"].items()}
    assert declared == {method: set(keys) for method, keys in OPTIONS.items()} | {"wiseft": {"alphas"}}


def test_every_schema_description_is_one_string():
    # An unquoted flow-mapping description with ", x" or ": " in it parses as extra keys with null values.
    def items(node):
        if isinstance(node, dict):
            for key, value in node.items():
                yield key, value
                yield from items(value)
        elif isinstance(node, list):
            for value in node:
                yield from items(value)

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    descriptions = [value for key, value in items(schema) if key == "description"]
    assert len(descriptions) > 50 and all(isinstance(text, str) for text in descriptions)
    assert [key for key, value in items(schema) if value is None and key != "default"] == []


def test_several_runs_to_a_job_stop_on_a_cluster_executor(tmp_path, config):
    # Checked when the run starts (the executor is not known while the Snakefile is read): before any job is sent.
    config["train"]["runs_per_job"] = 2
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path)]
    result = subprocess.run([*command, "--executor", "slurm", "--jobs", "1"], capture_output=True, text=True)
    assert result.returncode != 0
    assert "train.runs_per_job: several runs to a job is for local runs" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()  # no job ran, not even a local one
