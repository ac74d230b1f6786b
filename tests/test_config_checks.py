"""Config cross-references are checked before any job runs, with the key named."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from repdrift.models.build import BACKBONE_KEYS, PASSED_KEYS

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
        (
            lambda c: c["grids"]["tasks"].update(methods=["full", "l2-sp"]),
            "grids.tasks.methods: 'l2-sp' is not a method (methods: full, linear, scratch, l2sp, lpft, rift",
        ),
        (lambda c: c.update(similarity={"measures": ["procrustes", "cca"]}), "'cca' is not one of"),
        (lambda c: c.update(similarity={"mutual_knn_k": 12}), "similarity.mutual_knn_k: 12 neighbours need more"),
        # The smallest CKA sample of the datasets the grids fine-tune on, wherever it is set.
        (
            lambda c: c["cka"].update(dataset_samples={"isic": "all", "colon": 8}),
            "similarity.mutual_knn_k: 10 neighbours need more than that many images in the CKA sample "
            "(colon: cka.dataset_samples.colon = 8)",
        ),
        (lambda c: c["cka"].update(dataset_samples={"colon": 2}), "On instance['cka']['dataset_samples']['colon']"),
        (
            lambda c: c["cka"].update(dataset_samples={"colon": "half"}),
            "On instance['cka']['dataset_samples']['colon']",
        ),
        (lambda c: c["train"].update(linear_probe={"lr": 0}), "On instance['train']['linear_probe']['lr']"),
        (lambda c: c["train"].update(linear_probe={"epoch": 3}), "train.linear_probe.epoch: unknown key"),
        (lambda c: c.update(preserving={"rift": {"strength": -1}}), "On instance['preserving']['rift']['strength']"),
        (lambda c: c.update(preserving={"wiseft": {"alphas": [0.5, 1.5]}}), "1.5 is greater than the maximum of 1"),
        (lambda c: c.update(preserving={"l2sp": {"alpah": 1}}), "preserving.l2sp.alpah: unknown key"),
        (lambda c: c.update(analysis={"change_energy": 0}), "On instance['analysis']['change_energy']"),
        (
            lambda c: c["grids"]["tasks"].update(methods=["scratch", "wiseft"]),
            "grids.tasks.methods: wiseft is made from the linear and lpft runs of its seed (weight-space ensembles of "
            "the Linear probe and its LP-FT run, one run per a); add linear and lpft",
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


def test_an_unknown_dataset_in_cka_dataset_samples_is_named_in_one_line(tmp_path, config):
    config["cka"]["dataset_samples"] = {"isic2018": "all"}  # the paper's key, in a study whose ISIC is `isic`
    result = dry_run(tmp_path, config)
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if "isic2018" in line]
    # The datasets in the config file's order (dry_run's yaml.safe_dump sorts them).
    assert lines == [
        "  cka.dataset_samples.isic2018: 'isic2018' is not a key of `datasets` (chest, colon, isic, natural)"
    ]


def test_a_small_cka_samples_is_fine_when_every_target_has_its_own(tmp_path, config):
    config["cka"].update(samples=8, dataset_samples={"isic": "all", "colon": "all", "chest": 12})
    assert dry_run(tmp_path, config).returncode == 0  # mutual_knn_k 10 < 12, the smallest n the study measures on


# Prints, as JSON, what each job of the study would get as params (rules/*.smk evaluated on each run's wildcards, as
# Snakemake does for the job) and each run's failure definition (repdrift.study.Study.definition).
PARAMS_PROBE = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.iocontainers import Wildcards
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

snakefile, work = Path(sys.argv[1]), Path(sys.argv[2])
with SnakemakeApi(OutputSettings()) as api:
    workflow_api = api.workflow(
        resource_settings=ResourceSettings(cores=1),
        config_settings=ConfigSettings(configfiles=[work / "config/config.yaml"]),
        snakefile=snakefile,
        workdir=work,
    )
    workflow_api.list_rules()  # parses the Snakefile
    workflow = workflow_api._workflow
    names = workflow.globals


    def params(rule, wildcards=None):
        wc = Wildcards(fromdict=wildcards or {})
        return {k: v(wc) if callable(v) else v for k, v in workflow.get_rule(rule).params.items()}


    jobs, definitions = {}, {}
    for run, info in names["RUNS"].items():
        wc = info.wildcards
        if wc["method"].startswith("wiseft"):
            jobs["wiseft " + run] = params("wiseft", {**wc, "method": "lpft"})
        else:
            jobs[run] = params("linear_probe" if wc["method"] == "linear" else "finetune", wc)
            definitions[run] = names["STUDY"].definition(info)
    for backbone in names["BACKBONES_USED"]:
        for dataset in names["config"]["datasets"]:
            wc = {"backbone": backbone, "dataset": dataset}
            jobs[f"pretrained_features {backbone}/{dataset}"] = params("pretrained_features", wc)
    print("PROBE " + json.dumps(dict(jobs=jobs, definitions=definitions, whole=names["WHOLE_SPLIT"]), default=str))
"""


def job_params(tmp_path: Path, config: dict) -> dict:
    (tmp_path / "config").mkdir(parents=True, exist_ok=True)
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-c", PARAMS_PROBE, str(REPO / "Snakefile"), str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("PROBE "))
    return json.loads(line.removeprefix("PROBE "))


def changed_jobs(before: dict, after: dict) -> set[str]:
    assert before["jobs"].keys() == after["jobs"].keys()
    return {job for job in before["jobs"] if before["jobs"][job] != after["jobs"][job]}


def test_one_datasets_cka_sample_size_changes_only_its_own_jobs_params(tmp_path, config):
    before = job_params(tmp_path / "before", config)
    config["cka"]["dataset_samples"] = {"colon": "all"}
    after = job_params(tmp_path / "after", config)
    changed = changed_jobs(before, after)
    # The colon runs and each backbone's colon reference.
    assert changed == {job for job in after["jobs"] if "colon" in job}
    assert any(job.startswith("colon/") for job in changed)
    for job in changed:
        params, previous = after["jobs"][job], before["jobs"][job]
        assert (previous["cka_samples"], params["cka_samples"]) == (12, after["whole"])
        assert {k: v for k, v in params.items() if k != "cka_samples"} == {
            k: v for k, v in previous.items() if k != "cka_samples"
        }


def test_the_linear_probes_recipe_reaches_only_the_linear_and_lpft_runs(tmp_path, config):
    before = job_params(tmp_path / "before", config)
    # Written out as null, it is train's recipe: nothing is re-run.
    config["train"]["linear_probe"] = {"epochs": None, "lr": None}
    assert changed_jobs(before, job_params(tmp_path / "same", config)) == set()
    config["train"]["linear_probe"] = {"epochs": 3, "lr": 0.01}
    after = job_params(tmp_path / "after", config)
    # LP-FT's probe is the Linear probe: its runs change too (WiSE-FT's, derived from both, follow through their
    # inputs, not their params).
    trained = {job for job in after["jobs"] if not job.startswith(("wiseft", "pretrained_features"))}
    assert changed_jobs(before, after) == {job for job in trained if "/linear-" in job or "/lpft-" in job}
    lp_ft = next(run for run in after["definitions"] if "/lpft-" in run)
    assert after["definitions"][lp_ft]["recipe"] == before["definitions"][lp_ft]["recipe"]  # Full's budget
    options = after["definitions"][lp_ft]["options"]
    assert (options["probe_epochs"], options["probe_lr"]) == (3, 0.01)
    for run, definition in after["definitions"].items():
        linear = "/linear-" in run
        expected = {**before["definitions"][run]["recipe"], **({"epochs": 3, "lr": 0.01} if linear else {})}
        # The recipe a run trains with is the one its failure record is compared under.
        assert definition["recipe"] == expected
        assert after["jobs"][run]["recipe"] == expected


def test_the_schema_lists_the_keys_a_backbone_entry_takes():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    keys = schema["properties"]["backbones"]["additionalProperties"]["properties"]
    # `name` is the entry's config key (rules/common.smk backbone_cfg), never set in the entry.
    assert set(keys) == set(BACKBONE_KEYS) - {"name"} | set(PASSED_KEYS)


def test_the_e2e_config_is_valid(tmp_path, config):
    assert dry_run(tmp_path, config).returncode == 0


def test_the_schema_lists_the_options_of_every_preserving_method():
    from repdrift.study import METHODS

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())["properties"]["preserving"]
    declared = {method: set(entry["properties"]) for method, entry in schema["properties"].items()}
    assert declared == {name: set(method.options) for name, method in METHODS.items() if method.options}


def test_the_schema_names_every_method():
    from repdrift.study import METHODS

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    text = schema["$defs"]["grid"]["properties"]["methods"]["description"]
    assert all(re.search(rf"\b{name}\b", text) for name in METHODS), text


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


@pytest.mark.parametrize(
    "entry, message",
    [
        (dict(path="nowhere.pth"), "external_models[0].path: no such file: nowhere.pth (neither a file nor"),
        (dict(dataset="mine"), "external_models[0].dataset: 'mine' is not a key of `datasets`"),
        (dict(backbone="clip", format="timm"), "external_models[0].format: a timm file, but backbone 'clip' is a"),
        (dict(fromat="timm"), "external_models[0].fromat: unknown key, did you mean format?"),
    ],
)
def test_a_bad_external_model_is_named_before_any_job(tmp_path, config, entry, message):
    made = "results/runs/isic/vit/full-cls/seed0/model.safetensors"  # a model of the study: made first
    config["external_models"] = [{"dataset": "isic", "backbone": "vit", "path": made, **entry}]
    result = dry_run(tmp_path, config)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr, (result.stdout + result.stderr)[-2000:]


def test_external_runs_come_from_external_models_only(tmp_path, config):
    made = "results/runs/isic/vit/full-cls/seed0/model.safetensors"
    config["external_models"] = [{"dataset": "isic", "backbone": "vit", "path": made}] * 2
    config["grids"]["tasks"]["methods"] = ["full", "external"]
    result = dry_run(tmp_path, config)
    text = result.stdout + result.stderr
    assert result.returncode != 0
    assert "external_models[1]: the same run as external_models[0] (isic/vit/external-cls/seed0)" in text
    assert "grids.tasks.methods: external runs are listed under external_models, not in a grid" in text
    config["external_models"], config["grids"]["tasks"]["methods"] = config["external_models"][:1], ["full"]
    assert dry_run(tmp_path, config).returncode == 0  # a model the study makes is a valid path
