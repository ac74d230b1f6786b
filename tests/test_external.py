"""Your own fine-tuned models (repdrift.training.external): timm, open_clip and repdrift files import into a run's
files, a model the workflow trained imports back to that run's very numbers, and a file that does not fit fails with
one line naming its config key, before anything is written."""

import re

import data_fixtures as fx
import h5py
import numpy as np
import polars as pl
import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_models import CLIP, VIT

import repdrift.training.finetune as training
from repdrift.data import build_dataset, read_dataset, write_dataset
from repdrift.errors import RepdriftError
from repdrift.formats.features import Trajectory
from repdrift.formats.predictions import read_predictions
from repdrift.measurement.measure import calibration_tables, classification_table
from repdrift.models import build_backbone, save_backbone_weights
from repdrift.training.external import import_external

KEY = "external_models[0]"
FILES = ("model.safetensors", "history.parquet", "predictions.h5", "trajectory.h5", "natural.h5")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("external")
    labels = {"Training": list(range(7)) * 3, "Validation": list(range(7)), "Test": list(range(7)) * 2}
    dataset_dir = write_dataset(build_dataset("isic2018", fx.isic(root / "isic", labels)), root / "prepared")
    weights = {
        "vit": save_backbone_weights(build_backbone(VIT), root / "vit.safetensors"),
        "clip": save_backbone_weights(build_backbone(CLIP), root / "clip.safetensors"),
    }
    return dataset_dir, weights


def outputs(out):
    out.mkdir(parents=True, exist_ok=True)
    return training.RunOutputs(*(out / name for name in FILES))


def knn(dataset_dir):
    return dict(dataset_dir=dataset_dir, splits=["train", "test"], batch_size=8)


def imported(inputs, out, path, backbone=VIT, **entry):
    dataset_dir, weights = inputs
    entry = dict(dataset="isic", backbone=backbone["name"], pool="cls", seed=0, path=str(path), **entry)
    import_external(
        backbone,
        weights[backbone["name"]],
        entry,
        KEY,
        dataset_dir,
        outputs(out),
        batch_size=8,
        cka_samples=6,
        feature_dtype="float32",
        knn=knn(dataset_dir),
    )
    return out


def timm_model(num_classes=7, **kwargs):
    import timm

    arch = dict(VIT["model_kwargs"], **kwargs)
    return timm.create_model(VIT["arch"], pretrained=False, img_size=16, num_classes=num_classes, **arch)


def test_a_model_the_workflow_trained_imports_back_to_its_own_numbers(inputs, tmp_path):
    dataset_dir, weights = inputs
    run = tmp_path / "full"
    training.finetune(
        VIT,
        str(weights["vit"]),
        dataset_dir,
        "full",
        "cls",
        0,
        dict(epochs=2, batch_size=8, lr=1e-3),
        outputs(run),
        cka_samples=6,
        knn=knn(dataset_dir),
    )
    out = imported(inputs, tmp_path / "external", run / "model.safetensors", format="repdrift")
    ours, theirs = load_file(out / "model.safetensors"), load_file(run / "model.safetensors")
    assert ours.keys() == theirs.keys() and all(ours[k].equal(theirs[k]) for k in ours)
    a, b = read_predictions(out / "predictions.h5"), read_predictions(run / "predictions.h5")
    np.testing.assert_array_equal(a.probs, b.probs)
    np.testing.assert_array_equal(a.sample_id, b.sample_id)
    mine, trained = Trajectory(out / "trajectory.h5"), Trajectory(run / "trajectory.h5")
    assert mine.epochs == [0, 1] and mine.attrs["method"] == "external"
    np.testing.assert_array_equal(mine.sample_id, trained.sample_id)
    np.testing.assert_array_equal(mine[1], trained[len(trained) - 1])  # the final model's features, exactly
    np.testing.assert_array_equal(mine[0], trained[0])  # the pre-trained backbone's
    with h5py.File(out / "natural.h5") as fa, h5py.File(run / "natural.h5") as fb:
        np.testing.assert_array_equal(fa["final/cls"][()], fb["final/cls"][()])
    history = pl.read_parquet(out / "history.parquet")
    assert history.height == 0 and history.schema == pl.read_parquet(run / "history.parquet").schema


def test_a_timm_state_dict_imports_with_its_head_in_the_given_label_order(inputs, tmp_path):
    model = timm_model()
    torch.save(model.state_dict(), tmp_path / "timm.pth")
    classes = read_dataset(inputs[0]).classes
    out = imported(inputs, tmp_path / "out", tmp_path / "timm.pth", format="timm", classes=classes[::-1])
    tensors = load_file(out / "model.safetensors")
    assert torch.equal(tensors["head.weight"], model.head.weight.detach().flip(0))  # rows in the dataset's order
    assert torch.equal(tensors["backbone.blocks.1.mlp.fc2.weight"], model.blocks[1].mlp.fc2.weight.detach())
    predictions = read_predictions(out / "predictions.h5")
    assert predictions.probs.shape == (14, 7) and predictions.classes == classes
    # The imported model predicts what the timm model predicts, with its label order turned into the dataset's.
    loaded = training.load_classifier(VIT, out / "model.safetensors")
    images = torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        np.testing.assert_allclose(loaded(images).numpy(), model.eval()(images).flip(1).numpy(), atol=1e-5)


@pytest.mark.parametrize("head", [False, True])
def test_a_timm_state_dict_without_a_usable_head_is_measured_by_its_representations(inputs, tmp_path, head):
    # No head, or a head without its label order (`classes`): no predictions, no score; every other measurement.
    model = timm_model(num_classes=7 if head else 0)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "timm.safetensors")
    out = imported(inputs, tmp_path / "out", tmp_path / "timm.safetensors", format="timm")
    assert not any(key.startswith("head.") for key in load_file(out / "model.safetensors"))
    assert read_predictions(out / "predictions.h5").probs.shape == (0, 7)
    ece, bins = calibration_tables(out / "predictions.h5", 10)
    scores = classification_table(out / "predictions.h5")
    assert ece.height == bins.height == scores.height == 0
    assert ece.schema == scores.schema == {"metric": pl.Utf8, "value": pl.Float64}
    assert Trajectory(out / "trajectory.h5").shape == (2, 3, 6, 32)
    with h5py.File(out / "natural.h5") as h5:
        assert h5["final/cls"].shape[1] == 32


def test_an_open_clip_checkpoint_imports_its_image_tower_and_a_head(inputs, tmp_path):
    from repdrift.models import backbone_spec
    from repdrift.models.open_clip_backbone import create_clip

    clip = create_clip(backbone_spec(CLIP), None)  # the whole CLIP model: the text tower's keys are left out
    state = dict(clip.state_dict(), **{"head.weight": torch.randn(7, 32), "head.bias": torch.zeros(7)})
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "clip.pt")  # as DDP saves
    classes = read_dataset(inputs[0]).classes
    out = imported(inputs, tmp_path / "out", tmp_path / "clip.pt", backbone=CLIP, format="open_clip", classes=classes)
    tensors = load_file(out / "model.safetensors")
    tower = {k: v for k, v in clip.state_dict().items() if k.startswith("visual.")}
    assert {k.removeprefix("backbone.") for k in tensors if k.startswith("backbone.")} == set(tower)
    assert all(tensors[f"backbone.{k}"].equal(v) for k, v in tower.items())
    assert tensors["head.weight"].equal(state["head.weight"])
    assert read_predictions(out / "predictions.h5").probs.shape == (14, 7)


def bad_timm(tmp_path, **kwargs):
    path = tmp_path / "bad.pth"
    torch.save(timm_model(**kwargs).state_dict(), path)
    return path


@pytest.mark.parametrize(
    "make, entry, message",
    [
        (lambda p: bad_timm(p, embed_dim=48), {}, r"\.path: .*bad\.pth does not fit backbone 'vit' .*shapes differ: "),
        (lambda p: bad_timm(p, depth=3), {}, r"\.path: .*does not fit .*unexpected keys blocks\.2\."),
        (lambda p: bad_timm(p, depth=1), {}, r"\.path: .*does not fit .*missing keys blocks\.1\."),
        (
            lambda p: bad_timm(p, num_classes=5),
            {"classes": "dataset"},
            r"\.path: the head has 5 outputs, but dataset 'isic' has 7 classes",
        ),
        (lambda p: bad_timm(p), {"classes": ["MEL", "NV", "cat"]}, r"\.classes: not the classes of dataset 'isic'"),
        (lambda p: p / "nowhere.safetensors", {}, r"\.path: no such file: .*nowhere\.safetensors"),
        (lambda p: bad_timm(p), {"format": "open_clip"}, r"\.format: a open_clip file, but backbone 'vit' is a timm"),
        (
            lambda p: (p / "junk.safetensors").write_bytes(b"not a model") and p / "junk.safetensors",
            {},
            r"\.path: .*junk\.safetensors: not a readable model file",
        ),
    ],
)
def test_a_file_that_does_not_fit_fails_with_one_line_naming_its_key(inputs, tmp_path, make, entry, message):
    path = make(tmp_path)
    if entry.get("classes") == "dataset":
        entry["classes"] = read_dataset(inputs[0]).classes
    with pytest.raises(RepdriftError) as error:
        imported(inputs, tmp_path / "out", path, **{"format": "timm", **entry})
    text = str(error.value)
    assert "\n" not in text and text.startswith(KEY), text
    assert re.search(message, text), text
    assert not any((tmp_path / "out").iterdir())  # nothing written, not even in part


def runs_rows(run: str, method: str, values: dict, cka: list[float]) -> list[dict]:
    keys = dict(run=run, dataset="isic", backbone="vit", method=method, pool="cls", seed=0)
    rows = [dict(keys, metric=metric, layer=None, value=value) for metric, value in values.items()]
    return rows + [dict(keys, metric="cka", layer=layer, value=v) for layer, v in enumerate(cka, start=1)]


def test_the_findings_page_shows_each_external_model_beside_the_full_runs_of_its_cell(tmp_path):
    from repdrift.analysis.findings import Claim, external_rows, write_findings_page

    full = {"score": 0.6, "ece": 0.1, "knn@5": 0.5, "knn_ece@5": 0.2}
    runs = pl.DataFrame(
        runs_rows("isic/vit/full-cls/seed0", "full", full, [0.9, 0.7, 0.5])
        + runs_rows("isic/vit/full-cls/seed1", "full", dict(full, score=0.8), [0.9, 0.7, 0.3])
        + runs_rows("isic/vit/external-cls/seed0", "external", {"knn@5": 0.55, "knn_ece@5": 0.1}, [0.95, 0.8, 0.6])
    )
    pretrained = pl.DataFrame([dict(backbone="vit", pool="cls", metric="knn@5", value=0.7)])
    (row,) = external_rows(runs, pretrained, "cka", "final", 5)
    assert row["run"] == "isic/vit/external-cls/seed0" and row["similarity"] == pytest.approx(0.6)
    assert row["forgetting"] == pytest.approx(15.0) and row["knn_ece"] == pytest.approx(0.1)
    assert row["score"] is None and row["ece"] is None  # no head: no score, no target ECE
    assert row["full_runs"] == 2 and row["full_score"] == pytest.approx(0.7) and row["full_similarity"] == 0.4
    assert external_rows(runs, pretrained, "cka", 2, 5)[0]["similarity"] == pytest.approx(0.8)  # a block
    assert external_rows(runs.filter(pl.col("method") != "external"), pretrained, "cka", "final", 5) == []
    facts = dict(runs_per_backbone={}, study_runs=3, estimator="biased", layer="final", samples="n = 6", grid="g")
    facts |= dict(k=5, confidence=0.95, missing={}, degenerate={})
    write_findings_page([Claim("a", "t", "p", "r")], facts, tmp_path / "page.html", external=[row])
    page = (tmp_path / "page.html").read_text()
    assert "<h3>Your own fine-tuned models</h3>" in page and "isic/vit/external-cls/seed0" in page
    assert "2 runs: 0.400, 20.00, 0.200, 0.700, 0.100" in page
