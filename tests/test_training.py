"""Fine-tuning: every method resumes from its checkpoint to the same result as an uninterrupted run (on CPU),
LP-FT probes as a Linear run does, WiSE-FT ends at its two models, a diverging run stops and is recorded."""

import re

import data_fixtures as fx
import h5py
import numpy as np
import polars as pl
import pytest
from safetensors.torch import load_file
from tiny_models import VIT

import repdrift.training.finetune as training
from repdrift.data import build_dataset, write_dataset
from repdrift.models import build_backbone, save_backbone_weights
from repdrift.study.failures import recorded_failure
from repdrift.training.checkpoint import checkpoint_path

BACKBONE = VIT
RECIPE = dict(epochs=3, batch_size=8, lr=1e-3)
# Strengths large enough to matter on this tiny model; LP-FT probes 1 epoch (a Linear run of 1 epoch), then
# fine-tunes 3 at half the rate.
OPTIONS = {
    "l2sp": dict(alpha=0.1, beta=0.01),
    "lpft": dict(probe_epochs=1, probe_lr=1e-3, lr_scale=0.5),
    "rift": dict(strength=1.0),
    "feature_cka": dict(strength=1.0),
    "lora": dict(rank=2, alpha_ratio=2.0, dropout=0.0, lr_scale=1.0),
    "bitfit": dict(lr_scale=1.0),
    "partial": dict(blocks=1, lr_scale=1.0),
}


class Killed(Exception):
    """Stands in for the job being killed at a given point."""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    labels = {"Training": list(range(7)) * 5, "Validation": list(range(7)), "Test": list(range(7)) * 2}
    dataset_dir = write_dataset(build_dataset("isic2018", fx.isic(root / "isic", labels)), root / "prepared")
    weights = save_backbone_weights(build_backbone(BACKBONE), root / "weights.safetensors")
    return dataset_dir, weights


def outputs(out):
    return training.RunOutputs(
        out / "model.safetensors", out / "history.parquet", out / "predictions.h5", out / "trajectory.h5"
    )


def run(inputs, out, method="full", recipe=RECIPE, checkpoint=True):
    """Fine-tune the tiny run; every method with its OPTIONS."""
    dataset_dir, weights = inputs
    out.mkdir(parents=True, exist_ok=True)
    return training.finetune(
        BACKBONE,
        str(weights),
        dataset_dir,
        method,
        "cls",
        0,
        dict(recipe),
        outputs(out),
        cka_samples=6,
        checkpoint=checkpoint_path(out) if checkpoint else None,
        method_options=OPTIONS.get(method.rstrip("0123456789")),  # lora2: LoRA's options (its rank is 2 either way)
    )


def kill_at_evaluation(monkeypatch, call: int):
    """Make the `call`-th test evaluation raise, i.e. die in the middle of that epoch."""
    calls, evaluate = [0], training.evaluate

    def dying(*args, **kwargs):
        calls[0] += 1
        if calls[0] == call:
            raise Killed
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(training, "evaluate", dying)


@pytest.mark.parametrize(
    "method", ["full", "linear", "l2sp", "lpft", "rift", "feature_cka", "lora", "bitfit", "partial"]
)
def test_resumed_run_equals_uninterrupted_run(inputs, tmp_path, monkeypatch, capsys, method, assert_same_run_outputs):
    run(inputs, tmp_path / "whole", method, checkpoint=False)
    with monkeypatch.context() as patch:
        kill_at_evaluation(patch, call=2)  # epoch 1 done and checkpointed, killed in epoch 2
        with pytest.raises(Killed):
            run(inputs, tmp_path / "resumed", method)
    assert checkpoint_path(tmp_path / "resumed").is_file()
    capsys.readouterr()
    run(inputs, tmp_path / "resumed", method)
    total = 4 if method == "lpft" else 3  # LP-FT: its probe's epoch, then Full's 3
    assert f"resumed from the checkpoint of epoch 1/{total}" in capsys.readouterr().out
    assert_same_run_outputs(tmp_path / "whole", tmp_path / "resumed")
    assert not checkpoint_path(tmp_path / "resumed").parent.exists()  # removed once the outputs are complete


def test_lpft_resumes_in_its_fine_tuning_phase(inputs, tmp_path, monkeypatch, capsys, assert_same_run_outputs):
    run(inputs, tmp_path / "whole", "lpft", checkpoint=False)
    with monkeypatch.context() as patch:
        kill_at_evaluation(patch, call=3)  # epoch 2 of 4 (the first of fine-tuning) checkpointed, killed in 3
        with pytest.raises(Killed):
            run(inputs, tmp_path / "resumed", "lpft")
    capsys.readouterr()
    run(inputs, tmp_path / "resumed", "lpft")
    assert "resumed from the checkpoint of epoch 2/4" in capsys.readouterr().out
    assert_same_run_outputs(tmp_path / "whole", tmp_path / "resumed")


def test_lpft_fine_tunes_for_fulls_whole_budget_after_its_probe(inputs, tmp_path):
    from repdrift.formats.features import Trajectory

    history = run(inputs, tmp_path / "lpft", "lpft", checkpoint=False)
    full = run(inputs, tmp_path / "full", "full", checkpoint=False)
    # The probe's epoch is numbered 0 (it ends before fine-tuning starts), then Full's 3 epochs.
    assert history["epoch"].to_list() == [0, 1, 2, 3] and full["epoch"].to_list() == [1, 2, 3]
    assert history["lr"][1:].max() <= 0.5e-3 < history["lr"][0]  # the probe at probe_lr, then lr_scale 0.5 x lr
    # The trajectory leaves the probe out (the backbone was frozen): epoch 0 and the 3 fine-tuning epochs, as Full.
    trajectory, full_trajectory = (
        Trajectory(tmp_path / "lpft/trajectory.h5"),
        Trajectory(tmp_path / "full/trajectory.h5"),
    )
    assert trajectory.epochs == full_trajectory.epochs == [0, 1, 2, 3]
    np.testing.assert_array_equal(trajectory[0], full_trajectory[0])  # both start at the pre-trained backbone


def test_linear_checkpoint_leaves_out_the_frozen_backbone(inputs, tmp_path, monkeypatch):
    import torch

    kill_at_evaluation(monkeypatch, call=2)
    with pytest.raises(Killed):
        run(inputs, tmp_path, "linear")
    state = torch.load(checkpoint_path(tmp_path), weights_only=True)
    assert sorted(state["model"]) == ["head.bias", "head.weight"] and state["epoch"] == 1
    assert len(state["trajectory"]) == 2 and len(state["history"]) == 1


def test_killed_while_writing_outputs_resumes_at_the_end(
    inputs, tmp_path, monkeypatch, capsys, assert_same_run_outputs
):
    run(inputs, tmp_path / "whole", checkpoint=False)
    with monkeypatch.context() as patch:

        def dying(*args, **kwargs):
            raise Killed

        patch.setattr(training, "save_file", dying)
        with pytest.raises(Killed):
            run(inputs, tmp_path / "resumed")
    capsys.readouterr()
    run(inputs, tmp_path / "resumed")
    assert "resumed from the checkpoint of epoch 3/3" in capsys.readouterr().out
    assert_same_run_outputs(tmp_path / "whole", tmp_path / "resumed")


def test_checkpoint_of_another_config_is_ignored(inputs, tmp_path, monkeypatch, capsys, assert_same_run_outputs):
    kill_at_evaluation(monkeypatch, call=3)
    with pytest.raises(Killed):
        run(inputs, tmp_path / "changed", recipe=dict(RECIPE, lr=5e-4))
    monkeypatch.undo()
    capsys.readouterr()
    run(inputs, tmp_path / "changed")
    out = capsys.readouterr().out
    assert "ignoring checkpoint" in out and "resumed" not in out
    run(inputs, tmp_path / "whole", checkpoint=False)
    assert_same_run_outputs(tmp_path / "whole", tmp_path / "changed")


def test_unreadable_checkpoint_starts_over(inputs, tmp_path, capsys):
    path = checkpoint_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"truncated")
    run(inputs, tmp_path)
    assert "ignoring unreadable checkpoint" in capsys.readouterr().out
    assert pl.read_parquet(tmp_path / "history.parquet")["epoch"].to_list() == [1, 2, 3]


def test_checkpoints_are_spaced_by_checkpoint_minutes_and_the_last_epoch_always_saved(inputs, tmp_path, monkeypatch):
    saved = []
    monkeypatch.setattr(training, "save_checkpoint", lambda path, state: saved.append(state["epoch"]))
    dataset_dir, weights = inputs
    for minutes, expected in ((0, [1, 2, 3]), (60, [3])):
        saved.clear()
        out = tmp_path / f"every{minutes}"
        out.mkdir()
        training.finetune(
            BACKBONE,
            str(weights),
            dataset_dir,
            "full",
            "cls",
            0,
            dict(RECIPE),
            outputs(out),
            cka_samples=6,
            checkpoint=checkpoint_path(out),
            checkpoint_minutes=minutes,
        )
        assert saved == expected, minutes


def test_a_diverging_run_stops_with_one_line_and_writes_nothing(inputs, tmp_path):
    from repdrift.errors import TrainingError

    out = tmp_path / "run"
    with pytest.raises(TrainingError) as error:
        run(inputs, out, recipe=dict(RECIPE, lr=1.0e6))
    message = str(error.value)
    assert str(out) in message and "diverged" in message and "train.lr (now 1e+06)" in message
    assert re.search(r"at epoch \d+, step \d+ of \d+", message), message
    assert "\n" not in message
    assert not any((out / name).exists() for name in ("model.safetensors", "predictions.h5", "trajectory.h5"))
    # Recorded under the definition it failed with: the same config skips it, a smaller lr tries it again.
    definition = dict(backbone=BACKBONE, recipe=dict(RECIPE, lr=1.0e6), options={})
    assert recorded_failure(out, definition) == message
    assert recorded_failure(out, dict(definition, recipe=RECIPE)) is None
    run(inputs, out)
    assert recorded_failure(out, definition) is None and (out / "model.safetensors").exists()


def test_knn_and_its_feature_file_go_together(inputs, tmp_path):
    dataset_dir, weights = inputs
    knn = dict(dataset_dir=dataset_dir, splits=["train"], batch_size=8)
    with pytest.raises(ValueError, match="go together"):  # before any training
        training.finetune(
            BACKBONE, str(weights), dataset_dir, "full", "cls", 0, dict(RECIPE), outputs(tmp_path), knn=knn
        )


def test_the_model_file_records_its_pool_and_loads_without_a_default(inputs, tmp_path):
    from safetensors.torch import save_file

    from repdrift.errors import DataError

    dataset_dir, weights = inputs
    out = tmp_path / "mean"
    out.mkdir()
    training.finetune(
        BACKBONE,
        str(weights),
        dataset_dir,
        "full",
        "mean",
        0,
        dict(RECIPE, epochs=1),
        outputs(out),
        cka_samples=6,
    )
    model = training.load_classifier(BACKBONE, out / "model.safetensors")
    assert model.pool == "mean"
    old = tmp_path / "old.safetensors"
    save_file(load_file(out / "model.safetensors"), str(old))  # no metadata, as older files
    with pytest.raises(DataError, match="old.safetensors: no `pool`"):
        training.load_classifier(BACKBONE, old)


def test_lpft_probes_exactly_as_a_linear_run_then_trains_the_backbone(inputs, tmp_path, monkeypatch):
    saved = {}
    save = training.save_checkpoint
    monkeypatch.setattr(
        training, "save_checkpoint", lambda path, state: (saved.setdefault(state["epoch"], state), save(path, state))
    )
    run(inputs, tmp_path / "lpft", "lpft")  # 4 epochs: 1 probing, 3 fine-tuning
    run(inputs, tmp_path / "linear", "linear", recipe=dict(RECIPE, epochs=1), checkpoint=False)
    linear = load_file(tmp_path / "linear/model.safetensors")
    probe = saved[1]["model"]
    assert not any(key.startswith("backbone.") for key in probe)  # the backbone was frozen
    for key in ("head.weight", "head.bias"):
        assert probe[key].equal(linear[key]), key
    lpft = load_file(tmp_path / "lpft/model.safetensors")
    moved = [key for key in lpft if key.startswith("backbone.") and not lpft[key].equal(linear[key])]
    assert len(moved) > 10  # then fine-tuned


def test_wiseft_ends_at_the_probe_and_the_lpft_model_head_included(inputs, tmp_path):
    from repdrift.formats.features import Trajectory
    from repdrift.training.wiseft import wise_ft

    dataset_dir, _ = inputs
    run(inputs, tmp_path / "linear", "linear", recipe=dict(RECIPE, epochs=1), checkpoint=False)  # LP-FT's probe
    run(inputs, tmp_path / "lpft", "lpft", checkpoint=False)
    outputs = [
        {
            name: tmp_path / f"a{a}" / file
            for name, file in (
                ("model", "model.safetensors"),
                ("history", "h.parquet"),
                ("predictions", "p.h5"),
                ("trajectory", "t.h5"),
                ("natural", "natural.h5"),
            )
        }
        for a in (0, 0.5, 1)
    ]
    for out in outputs:
        out["model"].parent.mkdir()
    wise_ft(
        BACKBONE,
        tmp_path / "linear/model.safetensors",
        tmp_path / "lpft/model.safetensors",
        dataset_dir,
        [0.0, 0.5, 1.0],
        ["wiseft0", "wiseft0.5", "wiseft1"],
        outputs,
        epochs=RECIPE["epochs"],
        seed=0,
        batch_size=8,
        cka_samples=6,
        feature_dtype="float32",
        knn=dict(dataset_dir=dataset_dir, splits=["train", "test"], batch_size=8),
    )
    # Every tensor, head included: a = 0 is the probe model, a = 1 the LP-FT model, a = 0.5 their midpoint.
    probe, lpft = load_file(tmp_path / "linear/model.safetensors"), load_file(tmp_path / "lpft/model.safetensors")
    at = [load_file(out["model"]) for out in outputs]
    for key in probe:
        assert at[0][key].equal(probe[key]) and at[2][key].equal(lpft[key]), key
    assert not at[1]["head.weight"].equal(lpft["head.weight"])
    np.testing.assert_allclose(at[1]["head.weight"], (probe["head.weight"] + lpft["head.weight"]) / 2, atol=1e-6)
    for out, run_dir in ((outputs[0], "linear"), (outputs[2], "lpft")):
        with h5py.File(out["predictions"]) as fa, h5py.File(tmp_path / run_dir / "predictions.h5") as fb:
            np.testing.assert_array_equal(fa["probs"][()], fb["probs"][()])
    lpft_trajectory = Trajectory(tmp_path / "lpft/trajectory.h5")
    at0, at1 = Trajectory(outputs[0]["trajectory"]), Trajectory(outputs[2]["trajectory"])
    assert at0.epochs == at1.epochs == [0, RECIPE["epochs"]]
    np.testing.assert_array_equal(at0[1], lpft_trajectory[0])  # a = 0: the pre-trained backbone's features, exactly
    np.testing.assert_array_equal(at1[1], lpft_trajectory[len(lpft_trajectory) - 1])  # a = 1: the LP-FT run's
    history = pl.read_parquet(outputs[2]["history"])
    assert history["epoch"].to_list() == [RECIPE["epochs"]] and history["train_loss"].is_nan().all()


def test_runs_of_one_seed_start_from_the_same_head(inputs, tmp_path, monkeypatch):
    # The trade-off verdicts pair each method with Full by seed: the same head initialisation on the same backbone.
    heads = {}
    init = training.Classifier.__init__

    def recording(self, backbone, num_outputs, pool):
        init(self, backbone, num_outputs, pool)
        heads.setdefault(len(heads), self.head.weight.detach().clone())

    monkeypatch.setattr(training.Classifier, "__init__", recording)
    for method in ("full", "rift", "l2sp", "lora"):
        run(inputs, tmp_path / method, method, recipe=dict(RECIPE, epochs=1), checkpoint=False)
    assert len(heads) >= 3 and all(head.equal(heads[0]) for head in heads.values())
