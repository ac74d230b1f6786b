"""The study model (repdrift.study) on its own: no Snakemake run, no torch."""

import re
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from repdrift.formats.features import WHOLE_SPLIT
from repdrift.study import (
    METHODS,
    PAPER_METHODS,
    RUN,
    Study,
    base_method,
    family_of,
    knn_ece_metric,
    knn_metric,
    method_wildcard,
    methods_of,
    mutual_knn_metric,
    run_definition,
    wiseft_method,
)
from repdrift.study.failures import record_failure

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def config() -> dict:
    """The e2e study's config with the schema's defaults, as the Snakefile sees it."""
    config = yaml.safe_load((REPO / "tests/e2e/config.yaml").read_text())
    validate(config, str(REPO / "workflow/schemas/config.schema.yaml"))
    return config


def test_every_method_has_a_kind_and_the_rules_split_them_by_kind():
    assert {m.kind for m in METHODS.values()} == {"trained", "probe", "derived", "external"}
    assert methods_of("probe") == ["linear"] and methods_of("derived") == ["wiseft"]
    assert methods_of("external") == ["external"]
    assert set(methods_of("trained")) == {
        *("full", "scratch", "l2sp", "lpft", "rift", "feature_cka"),
        *("lora", "bitfit", "partial"),
    }
    assert PAPER_METHODS == ("full", "linear", "scratch")
    assert {m.family for m in METHODS.values()} == {"paper", "preserving", "peft", "external"}
    for name, method in METHODS.items():
        assert method.name == name and method.summary
        assert all(need in METHODS for need in method.needs)


def test_the_method_wildcard_takes_registered_runs_only():
    pattern = re.compile(f"(?:{method_wildcard()})")
    for run_method in ("full", "linear", "feature_cka", "wiseft0.5", "wiseft1", "wiseft0.00001", "lora4", "bitfit"):
        assert pattern.fullmatch(run_method), run_method
    assert pattern.fullmatch("external") and not pattern.fullmatch("external1")
    for other in ("wiseft", "fullx", "lora", "wiseft-1", "bitfit4", ""):
        assert not pattern.fullmatch(other), other


def test_wiseft_run_methods_are_plain_decimals_and_map_back():
    assert [wiseft_method(a) for a in (0.5, 1.0, 0.0, 1e-05, 0.25)] == [
        "wiseft0.5",
        "wiseft1",
        "wiseft0",
        "wiseft0.00001",
        "wiseft0.25",
    ]
    assert base_method("wiseft0.5") == "wiseft" and base_method("full") == "full" and base_method("wiseft") == "wiseft"


def test_metric_names():
    assert (knn_metric(20), knn_ece_metric(5), mutual_knn_metric(10)) == ("knn@20", "knn_ece@5", "mutual_knn@10")


def test_runs_are_the_union_of_the_grids(config):
    study = Study(config)
    grids = config["grids"]
    expected = set()
    for grid in grids.values():
        methods = [m for method in grid["methods"] for m in study.run_methods(method)]
        for d in grid["datasets"]:
            for b in grid["backbones"]:
                for m in methods:
                    for p in grid["pools"]:
                        for s in grid["seeds"]:
                            expected.add(RUN.format(dataset=d, backbone=b, method=m, pool=p, seed=s))
    assert set(study.runs) == expected
    shared = study.runs["isic/vit/full-cls/seed0"]
    assert (
        shared.grids == ("table1", "similarity", "preserving", "peft") and shared.seed == 0 and shared.method == "full"
    )
    assert {r.method for r in study.runs_of("derived")} == {"wiseft0.5", "wiseft1"}
    assert study.sources(study.runs["isic/vit/wiseft0.5-cls/seed1"]) == [
        "isic/vit/linear-cls/seed1",
        "isic/vit/lpft-cls/seed1",
    ]
    assert study.sources(shared) == []
    assert study.used("backbone") == ["vit", "clip", "dino"] and study.used("pool") == ["cls", "mean"]
    assert study.used("dataset") == ["isic", "colon", "chest"]  # the config's order, the tables' order


def test_recipes_options_and_definitions(config):
    config["train"]["linear_probe"] = {"epochs": 3, "lr": None}
    study = Study(config)
    assert "checkpoint_minutes" not in study.recipe and "linear_probe" not in study.recipe
    assert study.run_recipe("full") == study.recipe
    assert study.run_recipe("linear") == {**study.recipe, "epochs": 3}
    # LP-FT's probe is the Linear probe's recipe; its own entry beside it.
    assert study.method_options("lpft") == {"lr_scale": 0.1, "probe_epochs": 3, "probe_lr": study.recipe["lr"]}
    assert study.method_options("full") == {}
    assert study.method_options("wiseft0.5") == {"alpha": 0.5, "verdict_alpha": 0.5}  # its a, not the list
    run = study.runs["isic/vit/lpft-cls/seed0"]
    assert study.definition(run) == run_definition(
        {**config["backbones"]["vit"], "name": "vit"}, study.recipe, study.method_options("lpft")
    )


def test_cka_samples_per_dataset(config):
    config["cka"] = {**config["cka"], "samples": 12, "dataset_samples": {"colon": "all", "chest": 20}}
    study = Study(config)
    assert [study.cka_samples(d) for d in ("isic", "colon", "chest")] == [12, WHOLE_SPLIT, 20]


def test_a_recorded_failure_drops_its_run_and_the_runs_derived_from_it(config, tmp_path):
    study = Study(config)
    run = study.runs["isic/vit/lpft-cls/seed1"]
    record_failure(tmp_path / run.id, "diverged", study.definition(run))
    failed = study.failed(tmp_path)
    assert failed == {
        run.id: "diverged",
        "isic/vit/wiseft0.5-cls/seed1": f"derived from {run.id}, which failed",
        "isic/vit/wiseft1-cls/seed1": f"derived from {run.id}, which failed",
    }
    # Under another definition (a smaller lr), the run is tried again.
    config["train"]["lr"] = config["train"]["lr"] / 10
    assert Study(config).failed(tmp_path) == {}


def test_a_swept_method_is_one_run_per_value_each_with_its_own_option():
    config = {
        "preserving": {"lora": {"ranks": [4, 16], "alpha_ratio": 2.0, "dropout": 0.0, "lr_scale": 1.0}},
        "train": {"epochs": 2, "linear_probe": {}},
    }
    study = Study.__new__(Study)
    study.config = config
    assert study.run_methods("lora") == ["lora4", "lora16"]
    assert base_method("lora16") == "lora" and base_method("lora") == "lora" and base_method("loraX") == "loraX"
    assert (family_of("lora16"), family_of("wiseft0.5"), family_of("full"), family_of("loraX")) == (
        "peft",
        "preserving",
        "paper",
        None,
    )
    assert study.method_options("lora4") == {"rank": 4, "alpha_ratio": 2.0, "dropout": 0.0, "lr_scale": 1.0}
    # Adding a rank changes no other rank's options (so none of its runs re-runs).
    before = study.method_options("lora16")
    config["preserving"]["lora"]["ranks"] = [4, 8, 16]
    assert study.method_options("lora16") == before and study.run_methods("lora") == ["lora4", "lora8", "lora16"]


def test_an_external_model_is_a_run_of_its_own_grid_never_trained(config):
    entry = dict(dataset="isic", backbone="vit", pool="mean", seed=3, path="mine.safetensors", format="timm")
    config["external_models"] = [entry]
    study = Study(config)
    run = study.runs["isic/vit/external-mean/seed3"]
    assert run.grids == ("external",) and run.method == "external" and run.seed == 3
    assert list(run.wildcards) == ["dataset", "backbone", "method", "pool", "seed"]  # the grids' runs' order
    assert [r.id for r in study.runs_of("external")] == [run.id]
    assert run.id not in {r.id for kind in ("trained", "probe", "derived") for r in study.runs_of(kind)}
    assert study.external_models() == {run.id: (0, entry)}
    assert study.failed() == {}
