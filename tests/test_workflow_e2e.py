"""The whole workflow, end to end, on a tiny config in a scratch folder: outputs, shapes, sane values, reruns."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import polars as pl
import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
MEASURES = ("cka", "knn", "calibration", "reliability", "classification")  # a run's measurement files
pytestmark = pytest.mark.e2e


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), "--cores", "2", *args], capture_output=True, text=True
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return result


# Beside the tiny study (here, not in tests/e2e/config.yaml, which the resume and Slurm tests share): a model of
# one's own made from a trained run's file, imported (rule import_external) and measured as any run.
FULL_RUN, EXTERNAL_RUN = "isic/vit/full-cls/seed0", "isic/vit/external-cls/seed0"
EXTERNAL = f"""
external_models:
  - {{dataset: isic, backbone: vit, pool: cls, seed: 0, path: results/runs/{FULL_RUN}/model.safetensors}}
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("study")
    (workdir / "config").mkdir()
    (workdir / "config/config.yaml").write_text((REPO / "tests/e2e/config.yaml").read_text() + EXTERNAL)
    snakemake(workdir)
    return workdir


def test_tables_cover_every_run(study):
    runs = pl.read_parquet(study / "results/tables/runs.parquet")
    # table1, tasks, the similarity study's extra seed, the preserving grid's (4 trained + 2 WiSE-FT a) x 2 seeds
    # and its Linear run of seed 1 (seed 0's is table1's), the PEFT grid's (2 LoRA ranks, BitFit, partial) x 2
    # seeds, and the external model
    assert runs["run"].n_unique() == 12 + 4 + 1 + 12 + 1 + 8 + 1
    for metric in ("score", "ece", "auc", "map", "knn@5", "knn@10", "knn_ece@5", "knn_ece@10", "cka"):
        values = runs.filter(pl.col("metric") == metric)["value"]
        assert values.len() >= 17 and values.is_finite().all(), metric
        assert ((values >= 0) & (values <= 1 + 1e-6)).all(), metric  # float32 CKA(X, X) = 1 +- 1e-7
    for estimator in ("cka", "cka_debiased"):
        linear = runs.filter((pl.col("method") == "linear") & (pl.col("metric") == estimator))["value"]
        np.testing.assert_allclose(linear.to_numpy(), 1.0, atol=1e-5)  # a frozen backbone does not move
    # Every measure beside CKA, at every layer of every run (a Linear run's features are the pre-trained ones).
    for metric in ("procrustes", "pwcca", "rsa", "mutual_knn@10", "rbf_cka"):
        rows = runs.filter(pl.col("metric") == metric)
        assert rows.height == runs["run"].n_unique() * 3, metric
        finite = rows["value"].drop_nans()
        assert ((finite >= -1e-6) & (finite <= 1 + 1e-6)).all() or metric == "rsa", metric
    trajectories = pl.read_parquet(study / "results/tables/trajectories.parquet")
    assert {"procrustes", "pwcca", "rsa", "mutual_knn@10", "rbf_cka"} <= set(trajectories["metric"])
    # Blocks 1-2, then 3 = the final representation; CKA on the same 12 test images in every run.
    assert set(runs.filter(pl.col("metric") == "cka")["layer"]) == {1, 2, 3}
    assert set(runs.filter(pl.col("metric") == "cka_samples")["value"]) == {12.0}


def test_final_cka_is_the_last_trajectory_point(study):
    runs = pl.read_parquet(study / "results/tables/runs.parquet")
    traj = pl.read_parquet(study / "results/tables/trajectories.parquet")
    last = traj.filter(pl.col("epoch") == traj["epoch"].max())
    for estimator in ("cka", "cka_debiased"):
        final = runs.filter((pl.col("metric") == estimator) & (pl.col("method") == "full"))
        joined = final.join(last, on=["run", "metric", "layer"], suffix="_last")
        assert joined.height == final.height == 9 * 3  # every Full run (6 + 2 + 1), every layer
        np.testing.assert_allclose(joined["value"].to_numpy(), joined["value_last"].to_numpy(), rtol=0, atol=1e-6)


def test_trajectories_and_files(study):
    traj = pl.read_parquet(study / "results/tables/trajectories.parquet")
    cka = traj.filter((pl.col("metric") == "cka") & (pl.col("method") == "full"))
    assert set(cka["epoch"]) == {0, 1, 2}
    np.testing.assert_allclose(cka.filter(pl.col("epoch") == 0)["value"].to_numpy(), 1.0, atol=1e-5)
    run = study / "results/runs/isic/vit/full-cls/seed0"
    with h5py.File(run / "trajectory.h5") as h5:
        assert h5["features"].shape == (3, 3, 12, 32)  # epochs + 1, blocks + final, CKA sample, width
    assert not (run / "features/isic.h5").exists()  # the target features are the trajectory's last epoch
    # Feature files hold what is measured: the k-NN reads the final representation in the run's pool, the CKA
    # reads the pre-trained model's every layer of the CKA sample.
    for path in (study / "results/runs").glob("*/*/*/seed*/features/*.h5"):
        pool = path.parts[-4].split("-")[1]
        with h5py.File(path) as h5:
            assert set(h5) == {"final", "sample_id", "split", "targets"} and list(h5["final"]) == [pool], path
    with h5py.File(run / "features/natural.h5") as h5:
        assert h5["final/cls"].shape == (4 * (24 + 8), 32) and h5.attrs["layers"] == 2
    with h5py.File(study / "results/pretrained/vit/features/isic.h5") as h5:
        assert set(h5) == {"layers", "layers_sample_id"} and h5["layers/cls"].shape == (3, 12, 32)
    with h5py.File(run / "predictions.h5") as h5:
        np.testing.assert_allclose(h5["probs"][()].sum(1), 1.0, atol=1e-6)


FIGURES = (
    "cka_trajectory",
    "cka_heatmap",
    "cka_distribution",
    "cka_vs_score",
    "similarity_space",
    "correlation",
    "knn_forgetting",
    "tradeoff",
    "early_prediction",
    "change_rank",
    "agreement",
    "rulers",
)


def test_figures_tables_and_report(study):
    for name in FIGURES:
        assert (study / f"results/figures/{name}.svg").read_text().lstrip().startswith("<svg"), name
        assert (study / f"results/figures/{name}.html").stat().st_size > 100_000, name  # Vega inlined: offline
        caption = (study / f"results/figures/{name}.rst").read_text()
        assert any(ch.isdigit() for ch in caption), name  # the caption states numbers
    for backbone in ("vit", "clip", "dino"):
        assert (study / f"results/figures/attention/{backbone}.png").read_bytes()[:4] == b"\x89PNG"
    table1 = (study / "results/tables/table1.md").read_text().splitlines()
    # The config's dataset order, metric and training size in the header; percentages with two decimals.
    assert re.fullmatch(
        r"\| method \| backbone \| isic Acc \(n=\d+\) \| colon Acc \(n=\d+\) \| chest mAP \(n=\d+\) \|", table1[0]
    ), table1[0]
    assert [row.split(" | ")[:2] for row in table1[2:5]] == [["| Full", "vit"], ["| Full", "clip"], ["| Full", "dino"]]
    assert re.search(r"\| \d+\.\d\d \([+-]\d+\.\d\d; \d+ seeds?\) \|", table1[2]), table1[2]
    assert "pre-trained" in (study / "results/tables/table2.md").read_text()
    fits = pl.read_csv(study / "results/analysis/correlation.csv")
    assert set(fits["metric"]) == {"knn@5", "knn_ece@5", "ece"} and set(fits["layer"]) == {1, 2, 3}
    assert set(fits["backbone"]) == {"vit"} and set(fits["runs"]) == {2}  # the similarity grid: vit, 2 seeds
    sweep = pl.read_csv(study / "results/analysis/similarity_sweep.csv")
    assert sweep["share"].is_between(0, 1).all()
    assert "the paper says" in (study / "results/findings.html").read_text()
    tradeoff = pl.read_csv(study / "results/analysis/tradeoff.csv")
    methods = {"full", "linear", "l2sp", "lpft", "rift", "feature_cka", "wiseft0.5", "wiseft1"}
    methods |= {"lora2", "lora4", "bitfit", "partial"}  # the PEFT grid's, beside them
    assert set(tradeoff["method"]) == methods and set(tradeoff["runs"]) == {2}
    # WiSE-FT at a = 1 is the LP-FT run: the same score and similarity.
    by_method = {row["method"]: row for row in tradeoff.iter_rows(named=True)}
    assert by_method["wiseft1"]["score"] == pytest.approx(by_method["lpft"]["score"])
    assert by_method["wiseft1"]["similarity"] == pytest.approx(by_method["lpft"]["similarity"], abs=1e-6)
    # Paired verdicts of the candidates named in advance (WiSE-FT at verdict_alpha 0.5 only).
    verdicts = pl.read_csv(study / "results/analysis/tradeoff_verdicts.csv")
    assert set(verdicts["method"]) == {"feature_cka", "l2sp", "lpft", "rift", "wiseft0.5"}
    assert set(verdicts["seeds"]) == {2} and set(verdicts["estimator"]) == {"cka"}
    assert set(verdicts["verdict"]) <= {"agrees", "disagrees", "inconclusive"}
    assert "Beyond the paper" in (study / "results/findings.html").read_text()
    assert "Under other rulers" in (study / "results/findings.html").read_text()
    rulers = pl.read_csv(study / "results/analysis/rulers.csv")
    assert set(rulers["function"]) == {"forgetting", "knn_ece", "score"} and "procrustes" in set(rulers["measure"])
    early = pl.read_csv(study / "results/analysis/early_prediction.csv")
    assert set(early["epoch"]) == {0, 1, 2} and set(early["target"]) == {"forgetting", "knn_ece"}
    assert set(pl.read_csv(study / "results/analysis/findings.csv")["claim"]) == {"a", "b", "c", "d", "e"}
    snakemake(study, "--report", "results/report.html")
    report = (study / "results/report.html").read_text()
    assert len(report) > 1_000_000 and "Mean similarity after epoch 2" in report


def test_an_external_model_measures_exactly_as_the_run_that_trained_it(study):
    # The Full run's own model file imported back: every measurement equal, bit for bit (a fine-tune's test
    # evaluation and k-NN extraction, repeated), less what only training has (the test loss of its last epoch, the
    # rank of its weight change).
    runs = pl.read_parquet(study / "results/tables/runs.parquet")
    mine, theirs = (
        runs.filter(pl.col("run") == run).select("metric", "layer", "value").sort("metric", "layer")
        for run in (EXTERNAL_RUN, FULL_RUN)
    )
    theirs = theirs.filter(
        ~pl.col("metric").is_in(["test_loss", "change_rank", "change_rank_fraction", "change_relative"])
    )
    assert mine.select("metric", "layer").equals(theirs.select("metric", "layer"))
    for metric in ("cka", "cka_debiased", "knn@5", "knn_ece@5", "score", "ece", "accuracy", "auc", "rsa"):
        assert metric in set(mine["metric"]), metric
    np.testing.assert_array_equal(mine["value"].to_numpy(), theirs["value"].to_numpy())
    assert runs.filter(pl.col("run") == EXTERNAL_RUN)["method"].unique().to_list() == ["external"]
    grids = pl.read_parquet(study / "results/tables/grids.parquet").filter(pl.col("run") == EXTERNAL_RUN)
    assert grids["grid"].to_list() == ["external"]
    trajectory = pl.read_parquet(study / "results/tables/trajectories.parquet").filter(pl.col("run") == EXTERNAL_RUN)
    assert set(trajectory["epoch"]) == {0, 1} and set(trajectory["metric"]) >= {"cka", "procrustes"}
    # Never trained, measured once; on the findings page beside the Full runs of its cell; in no paper analysis.
    assert not (study / f"results/logs/finetune/{EXTERNAL_RUN}.log").exists()
    page = (study / "results/findings.html").read_text()
    assert "<h3>Your own fine-tuned models</h3>" in page and EXTERNAL_RUN in page
    for path in ("analysis/similarity_space.parquet", "analysis/correlation_points.parquet"):
        assert EXTERNAL_RUN not in pl.read_parquet(study / "results" / path)["run"].to_list(), path
    assert "external" not in pl.read_csv(study / "results/tables/table1.csv")["method"].to_list()


def readme_config(section: str = "## Your own data and models") -> dict:
    """The README's config/mine.yaml: the first yaml block of its section."""
    import yaml

    text = (REPO / "README.md").read_text()
    body = text[text.index(section) :]
    return yaml.safe_load(re.search(r"```yaml\n(.*?)```", body, re.DOTALL).group(1))


def test_the_readmes_own_data_and_models_example_runs(study, tmp_path):
    # Its lines as written, the paths pointed at a tiny csv dataset, a random ViT-S as the pre-trained weights and a
    # timm state_dict with a head as the model of one's own; the README's commands on the finished study.
    import data_fixtures as fx
    import timm
    import torch
    import yaml

    from repdrift.models import save_backbone_weights

    mine = readme_config()
    entry, backbone = mine["external_models"][0], mine["backbones"]["vit_s16"]
    mine["datasets"]["mine"]["root"] = str(fx.labelled_csv(tmp_path / "mine", classes=entry["classes"], per_class=40))
    weights = tmp_path / "vit_s16.safetensors"
    save_backbone_weights(timm.create_model(backbone["arch"], pretrained=False, num_classes=0), weights)
    backbone["weights"] = str(weights)
    model = timm.create_model(backbone["arch"], pretrained=False, num_classes=len(entry["classes"]))
    entry["path"] = str(tmp_path / "vit_s16_on_mine.pth")
    torch.save(model.state_dict(), entry["path"])
    (study / "config/mine.yaml").write_text(yaml.safe_dump(mine))
    try:
        # Absolute: Snakemake reads --configfile from its own working directory, not --directory's.
        args = ("--configfile", str(study / "config/config.yaml"), str(study / "config/mine.yaml"))
        jobs = jobs_after(study, lambda text: text, *args)
        runs = [f"results/runs/mine/vit_s16/{m}-cls/seed0" for m in ("full", "linear", "external")]
        assert {rule: sorted(jobs[rule]) for rule in STAGES + ("import_external",) if rule in jobs} == {
            "prepare_dataset": ["results/data/mine/manifest.parquet"],
            "finetune": [f"{runs[0]}/model.safetensors"],
            "linear_probe": [f"{runs[1]}/model.safetensors"],
            "import_external": [f"{runs[2]}/model.safetensors"],
            "pretrained_features": [f"results/pretrained/vit_s16/features/{d}.h5" for d in ("mine", "natural")],
            "measure": sorted(f"{run}/cka.parquet" for run in runs),
        }
        # The import and its measurement, for real (the grid's runs would fine-tune a ViT-S: the dry run above).
        snakemake(study, f"{runs[2]}/cka.parquet", *args)  # the target first: --configfile takes every word after it
        scores = pl.read_parquet(study / runs[2] / "classification.parquet")
        assert set(scores["metric"]) == {"accuracy", "balanced_accuracy", "map", "auc"}
        assert (
            pl.read_parquet(study / runs[2] / "cka.parquet").height == 3 * 13
        )  # epochs 0, 1, final x 12 blocks + final
    finally:
        (study / "config/mine.yaml").unlink()


def dry_run_after(study: Path, edit) -> str:
    """What a dry run prints after `edit(config text) -> config text`; the config is restored after."""
    config = study / "config/config.yaml"
    original = config.read_text()
    config.write_text(edit(original))
    try:
        return snakemake(study, "-n").stdout
    finally:
        config.write_text(original)


def rules_rerun_after(study: Path, edit) -> set[str]:
    """The rules a dry run lists after `edit`."""
    dry = dry_run_after(study, edit)
    return {line.split()[1].rstrip(":") for line in dry.splitlines() if line.startswith("rule ")}


ANALYSES = {"all", "similarity_space", "correlation", "findings", "tradeoff", "rulers"}


def test_changing_an_analysis_parameter_reruns_only_analysis(study):
    rerun = rules_rerun_after(study, lambda text: text + "\nanalysis: {eta: 0.1, cka_layer: 1, n_intervals: 5}\n")
    assert {"similarity_space", "correlation", "figures", "findings"} <= rerun
    assert rerun <= ANALYSES | {"figures"}


def test_changing_the_cka_estimator_reruns_only_analysis(study):
    rerun = rules_rerun_after(
        study, lambda text: text.replace("cka:\n  samples: 12\n", "cka:\n  samples: 12\n  estimator: debiased\n")
    )
    assert {"correlation", "findings", "figures"} <= rerun
    assert rerun <= ANALYSES | {"figures"}


def test_changing_the_headline_k_reruns_only_analysis(study):
    # k = 10 is already among ks: every k is measured, so nothing is measured again.
    rerun = rules_rerun_after(study, lambda text: text.replace("k: 5\n", "k: 10\n"))
    assert {"correlation", "findings"} <= rerun
    assert rerun <= ANALYSES | {"paper_tables", "figures"}


def test_changing_the_ks_reruns_only_measurements_and_what_follows(study):
    rerun = rules_rerun_after(study, lambda text: text.replace("ks: [5, 10]\n", "ks: [3, 5, 10]\n"))
    assert {"measure", "knn_pretrained", "aggregate"} <= rerun
    assert rerun.isdisjoint({"finetune", "linear_probe", "pretrained_features", "pretrain_demo"})


def runs_rerun_after(study: Path, edit) -> dict[str, set[str]]:
    """The runs (dataset/backbone/method-pool/seed) of each rule's jobs a dry run lists after `edit`."""
    dry = dry_run_after(study, edit)
    jobs = {}
    for block in re.split(r"\n(?=rule |localrule )", dry):
        if block.startswith(("rule ", "localrule ")):
            rule = block.split()[1].rstrip(":")
            outputs = re.search(r"^    output: (.*)$", block, re.MULTILINE)
            runs = re.findall(r"results/runs/([^/]+/[^/]+/[^/]+/seed\d+)/", outputs.group(1)) if outputs else []
            jobs.setdefault(rule, set()).update(runs)
    return jobs


def test_one_datasets_cka_sample_size_reruns_only_its_runs(study):
    def edit(text):
        return text.replace("cka:\n  samples: 12\n", "cka:\n  samples: 12\n  dataset_samples: {colon: all}\n")

    jobs = runs_rerun_after(study, edit)
    trained = jobs.get("finetune", set()) | jobs.get("linear_probe", set())
    assert trained and all(run.startswith("colon/") for run in trained), trained
    assert all(run.startswith("colon/") for run in jobs["measure"])
    assert not {"pretrain_demo", "prepare_dataset"} & set(jobs)
    # The colon reference of the backbone that has colon runs, nothing else.
    assert jobs_after(study, edit)["pretrained_features"] == ["results/pretrained/vit/features/colon.h5"]


def test_the_linear_probes_recipe_reruns_only_the_linear_and_lpft_runs(study):
    same = runs_rerun_after(
        study, lambda text: text.replace("\ntrain:\n", "\ntrain:\n  linear_probe: {epochs: null}\n")
    )
    assert "finetune" not in same and "linear_probe" not in same  # null: train's recipe, nothing to redo
    jobs = runs_rerun_after(study, lambda text: text.replace("\ntrain:\n", "\ntrain:\n  linear_probe: {lr: 0.01}\n"))
    assert jobs["linear_probe"] and all("/linear-" in run for run in jobs["linear_probe"])
    # LP-FT's probe is the Linear probe, and WiSE-FT interpolates both: they follow; nothing else is trained.
    assert jobs["finetune"] and all("/lpft-" in run for run in jobs["finetune"])
    assert not {"pretrained_features", "pretrain_demo"} & set(jobs)


@pytest.fixture
def study_copy(study, tmp_path) -> Path:
    """A copy of the finished study for a test that breaks something: the shared one stays as every test expects."""
    copy = tmp_path / "study"
    # With Snakemake's metadata (params, code) and the files' times: the copy is as up to date as the study.
    shutil.copytree(study, copy, symlinks=True, ignore=shutil.ignore_patterns("locks", "log"))
    assert "Nothing to be done" in snakemake(copy, "-n").stdout
    return copy


def test_truncated_image_gives_one_clear_error(study_copy):
    study = study_copy
    # The manifest names images by absolute path, the shared study's: restored below.
    manifest = pl.read_parquet(study / "results/data/isic/manifest.parquet").filter(pl.col("split") == "test")
    image = Path(manifest.sort("path")["path"][0])
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 3])
    try:
        result = snakemake(study, "--force", "results/runs/isic/vit/full-cls/seed0/history.parquet", check=False)
    finally:
        image.write_bytes(data)
    assert result.returncode != 0
    message = f"repdrift: rule finetune: {image}: cannot read image"
    assert message in result.stderr
    log = (study / "results/logs/finetune/isic/vit/full-cls/seed0.log").read_text()
    assert log.strip().splitlines()[-1].startswith(message) and "Traceback" not in log
    assert not (study / "results/runs/isic/vit/full-cls/seed0/history.parquet").exists()  # nothing partial left


def study_definition(workdir: Path, backbone: str, method: str = "full") -> dict:
    """A run's definition as the workflow computes it (repdrift.study): the config with the schema's defaults."""
    import yaml
    from snakemake.utils import validate

    from repdrift.study import Study

    config = yaml.safe_load((workdir / "config/config.yaml").read_text())
    validate(config, str(REPO / "workflow/schemas/config.schema.yaml"))
    study = Study(config)
    return next(study.definition(r) for r in study.runs.values() if (r.backbone, r.method) == (backbone, method))


def test_a_diverged_run_is_named_and_keep_going_finishes_without_it(study_copy):
    from repdrift.study.failures import FILE_NAME, record_failure

    study, run = study_copy, "isic/vit/lpft-cls/seed1"  # a run of the preserving grid only
    run_dir = study / "results/runs" / run
    # A real divergence: one line naming run, epoch and step; nothing left but the record.
    shutil.rmtree(run_dir)
    config = (study / "config/config.yaml").read_text()
    (study / "config/diverge.yaml").write_text(config.replace("\ntrain:\n", "\ntrain:\n  lr: 1.0e+6\n"))
    target = f"results/runs/{run}/model.safetensors"
    result = snakemake(study, target, "--configfile", str(study / "config/diverge.yaml"), check=False)
    assert result.returncode == 1
    line = next(line for line in result.stderr.splitlines() if line.startswith("repdrift: rule finetune"))
    pattern = rf"{run}: fine-tuning diverged: .* at epoch 1 \(after 2 probe epochs\), step \d+ of \d+; .*train\.lr"
    assert re.search(pattern, line), line
    # With the WiSE-FT runs interpolating to it: they cannot be made either.
    derived = [f"isic/vit/wiseft{a}-cls/seed1" for a in ("0.5", "1")]
    assert f"3 run(s) failed and are recorded as failed ({run}, {', '.join(derived)})" in result.stderr
    assert sorted(p.name for p in run_dir.iterdir() if p.is_file()) == [FILE_NAME]
    # The same failure under the study's own config (the divergence above ran with another lr): the study finishes
    # without the run, and names it.
    message = line.removeprefix("repdrift: rule finetune: ")
    record_failure(run_dir, message, study_definition(study, "vit", "lpft"))
    result = snakemake(study, "--keep-going")
    assert "rule finetune:" not in result.stdout + result.stderr
    grids = pl.read_parquet(study / "results/tables/grids.parquet")
    assert set(grids.filter(pl.col("run") == run)["failure"]) == {message}
    assert grids.filter(pl.col("run") == derived[0])["failure"].to_list() == [f"derived from {run}, which failed"]
    assert run not in pl.read_parquet(study / "results/tables/runs.parquet")["run"].to_list()
    page = (study / "results/findings.html").read_text()
    assert "3 runs of the study are missing" in page and run in page
    assert "Nothing to be done" in snakemake(study, "-n").stdout
    # Deleting the record tries the run again.
    (run_dir / FILE_NAME).unlink()
    dry = snakemake(study, "-n").stdout
    assert f"results/runs/{run}/model.safetensors" in dry


STAGES = ("prepare_dataset", "pretrain_demo", "finetune", "linear_probe", "wiseft", "pretrained_features", "measure")
STUDY_WIDE = {"aggregate", "similarity_space", "correlation", "paper_tables", "findings", "tradeoff", "rulers", "all"}
STUDY_WIDE |= {"figures", "attention_maps", "knn_pretrained"}


def jobs_after(study: Path, edit, *args: str) -> dict[str, list[str]]:
    """Each rule's jobs a dry run lists after `edit` (with `args`), as each job's first output."""
    config = study / "config/config.yaml"
    original = config.read_text()
    config.write_text(edit(original))
    try:
        dry = snakemake(study, "-n", *args).stdout
    finally:
        config.write_text(original)
    jobs = {}
    for block in re.split(r"\n(?=rule |localrule )", dry):
        if block.startswith(("rule ", "localrule ")):
            output = re.search(r"^    output: ([^,\n]*)", block, re.MULTILINE)
            jobs.setdefault(block.split()[1].rstrip(":"), []).append(output.group(1) if output else "")
    return jobs


def test_forcerun_names_a_stage_and_reruns_every_run_of_it(study):
    runs = pl.read_parquet(study / "results/tables/runs.parquet")["run"].unique().to_list()
    jobs = jobs_after(study, lambda text: text, "--forcerun", "measure")
    # One measurement job per run, nothing upstream of it.
    assert sorted(jobs["measure"]) == sorted(f"results/runs/{run}/cka.parquet" for run in runs)
    assert set(jobs) - {"measure"} <= STUDY_WIDE
    trained = jobs_after(study, lambda text: text, "--forcerun", "finetune")["finetune"]
    assert len(trained) == sum(not re.search("/(linear|wiseft|external)", run) for run in runs)


def test_a_new_csv_dataset_schedules_only_its_own_jobs(study, tmp_path):
    import data_fixtures as fx

    root = fx.labelled_csv(tmp_path / "mine")
    grid = "  mine:\n    backbones: [vit]\n    datasets: [mine]\n    methods: [full]\n"
    dataset = f"  mine: {{kind: csv, root: {root}}}\n"
    jobs = jobs_after(study, lambda text: text.replace("\ngrids:\n", "\ngrids:\n" + grid).replace(
        "\ndatasets:\n", "\ndatasets:\n" + dataset))  # fmt: skip
    run = "results/runs/mine/vit/full-cls/seed0"
    assert {rule: jobs[rule] for rule in STAGES if rule in jobs} == {
        "prepare_dataset": ["results/data/mine/manifest.parquet"],
        "finetune": [f"{run}/model.safetensors"],
        "pretrained_features": ["results/pretrained/vit/features/mine.h5"],
        "measure": [f"{run}/cka.parquet"],
    }
    assert set(jobs) - set(STAGES) <= STUDY_WIDE


def test_a_new_seed_or_grid_schedules_only_its_runs(study):
    seed = jobs_after(
        study, lambda text: text.replace("    seeds: [0, 1]\n  # Every", "    seeds: [0, 1, 2]\n  # Every")
    )
    assert {rule: sorted(jobs) for rule, jobs in seed.items() if rule in STAGES} == {
        "finetune": ["results/runs/isic/vit/full-cls/seed2/model.safetensors"],
        "measure": ["results/runs/isic/vit/full-cls/seed2/cka.parquet"],
    }
    grid = "  more:\n    backbones: [clip]\n    datasets: [colon]\n    methods: [scratch, linear]\n"
    more = jobs_after(study, lambda text: text.replace("\ngrids:\n", "\ngrids:\n" + grid))
    runs = [f"results/runs/colon/clip/{method}-cls/seed0" for method in ("linear", "scratch")]
    assert {rule: sorted(jobs) for rule, jobs in more.items() if rule in STAGES} == {
        "finetune": [f"{runs[1]}/model.safetensors"],
        "linear_probe": [f"{runs[0]}/model.safetensors"],
        "pretrained_features": ["results/pretrained/clip/features/colon.h5"],
        "measure": [f"{run}/cka.parquet" for run in runs],
    }


def test_removing_a_grid_reruns_only_the_study_wide_steps(study):
    jobs = jobs_after(study, lambda text: re.sub(r"\n  tasks:\n(    .*\n)+", "\n", text))
    assert jobs and set(jobs) <= STUDY_WIDE, jobs
    assert "aggregate" in jobs


def test_the_peft_grid_is_judged_against_biderman_et_al(study):
    verdicts = pl.read_csv(study / "results/analysis/peft_verdicts.csv")
    assert sorted(verdicts["method"]) == ["bitfit", "lora2", "lora4", "partial"]
    assert (verdicts["seeds"] == 2).all() and verdicts["score_lo"].is_finite().all()
    assert set(verdicts["claim_verdict"]) <= {"agrees", "disagrees", "inconclusive"}
    page = (study / "results/findings.html").read_text()
    assert "<h3>Beyond the paper: parameter-efficient fine-tuning</h3>" in page and "lora4: score" in page
    assert "With 2 paired seeds, a t interval is 12.7 standard errors wide" in page
    # The trade-off table holds both grids' runs; LoRA's change has rank at most r in every matrix, BitFit's none,
    # partial's only in its top block (of 2).
    assert {"lora2", "lora4", "bitfit", "partial", "rift"} <= set(
        pl.read_csv(study / "results/analysis/tradeoff.csv")["method"]
    )
    change = pl.read_parquet(study / "results/tables/weight_change.parquet")
    for method, most in (("lora2", 2), ("lora4", 4), ("bitfit", 0)):
        assert change.filter(pl.col("method") == method)["rank"].max() <= most, method
    partial = change.filter(pl.col("method") == "partial")
    assert (partial.filter(pl.col("block") == 1)["rank"] == 0).all() and (
        partial.filter(pl.col("block") == 2)["rank"] > 0
    ).all()


def test_the_rank_of_the_change_of_every_trained_run(study):
    from repdrift.metrics.spectrum import energy_rank
    from repdrift.study import METHODS, base_method

    runs = pl.read_parquet(study / "results/tables/runs.parquet")
    trained = {
        r for r, m in runs.select("run", "method").unique().iter_rows() if METHODS[base_method(m)].kind == "trained"
    }
    table = pl.read_parquet(study / "results/tables/weight_change.parquet")
    assert set(table["run"]) == trained and table.height == len(trained) * 2 * 4  # 2 blocks x qkv, proj, fc1, fc2
    assert (table["full_rank"] == 32).all() and (table["energy"] == 0.9).all()
    assert table["rank"].is_between(0, 32).all() and (table["relative_change"] >= 0).all()
    full = table.filter(pl.col("method") == "full")
    assert (full["rank"] >= 1).all() and (full["relative_change"] > 0).all()  # every matrix moved
    # The study table's ranks are the per-run file's singular values at the configured energy.
    own = pl.read_parquet(study / "results/runs/isic/vit/full-cls/seed0/weight_change.parquet")
    mine = table.filter(pl.col("run") == "isic/vit/full-cls/seed0").sort("block", "matrix")
    assert mine["rank"].to_list() == [energy_rank(s, 0.9) for s in own.sort("block", "matrix")["singular_values"]]
    assert not any((study / "results/runs").glob("*/*/linear-*/seed*/weight_change.parquet"))
    assert not any((study / "results/runs").glob("*/*/wiseft*/seed*/weight_change.parquet"))
    # runs.parquet: the per-run medians beside the other measurements; the trade-off table's column.
    ranks = runs.filter(pl.col("metric") == "change_rank")
    assert set(ranks["run"]) == trained and ranks["layer"].is_null().all()
    fractions = runs.filter(pl.col("metric") == "change_rank_fraction")["value"]
    assert fractions.is_between(0, 1).all()
    tradeoff = {
        row["method"]: row for row in pl.read_csv(study / "results/analysis/tradeoff.csv").iter_rows(named=True)
    }
    assert tradeoff["full"]["change_rank"] >= 1
    assert tradeoff["linear"]["change_rank"] is None or np.isnan(tradeoff["linear"]["change_rank"])
    caption = (study / "results/figures/change_rank.rst").read_text()
    assert "90 %" in caption and "isic (cls pool)" in caption and "vit: " in caption


def test_the_change_energy_reruns_no_training(study):
    rerun = rules_rerun_after(study, lambda text: text + "\nanalysis: {change_energy: 0.5}\n")
    assert {"aggregate", "tradeoff"} <= rerun
    assert rerun.isdisjoint({"finetune", "linear_probe", "wiseft", "measure", "pretrained_features"})
