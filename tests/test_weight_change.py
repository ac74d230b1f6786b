"""The rank of the weight change (Biderman et al. 2024): the energy rank against numpy's SVD on constructed changes,
the per-run file of timm and open_clip backbones and of a fine-tune (Full, Scratch, resumed), the study table and
runs.parquet's rows, the figure and its caption."""

import data_fixtures as fx
import numpy as np
import polars as pl
import pytest
import torch
from tiny_models import CLIP
from tiny_models import VIT as TIMM

from repdrift.analysis.weight_change import (
    cell_of,
    change_rank_caption,
    change_rank_chart,
    change_run_rows,
    change_table,
    per_block,
)
from repdrift.measurement.weight_change import block_weights, weight_change, write_weight_change
from repdrift.metrics.spectrum import energy_rank
from repdrift.models import build_backbone

MATRICES = {"qkv", "proj", "fc1", "fc2"}


def numpy_singular_values(delta) -> np.ndarray:
    return np.linalg.svd(np.asarray(delta, dtype=np.float64), compute_uv=False)


# --- the rank from the singular values ------------------------------------------------------------------------------
def test_energy_rank_of_a_constructed_low_rank_change():
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(96, 32))
    delta = rng.normal(size=(96, 3)) @ rng.normal(size=(3, 32))  # rank 3
    s = numpy_singular_values((w0 + delta) - w0)
    assert energy_rank(s, 0.9) <= 3 and energy_rank(s, 1.0) == 3  # float noise below 1e-12 of the energy
    # By hand: the smallest k whose top-k squares hold the share.
    squares = np.sort(s)[::-1] ** 2
    for energy in (0.1, 0.5, 0.9, 0.99):
        k = energy_rank(s, energy)
        assert squares[:k].sum() >= energy * squares.sum() * (1 - 1e-12) > squares[: k - 1].sum()


def test_energy_rank_edge_cases():
    assert energy_rank(np.zeros(8), 0.9) == 0  # no change
    assert energy_rank([], 0.9) == 0
    assert energy_rank([2.0, 0.0, 0.0], 1.0) == 1
    assert energy_rank([1.0, 1.0, 1.0, 1.0], 0.75) == 3 and energy_rank([1.0, 1.0, 1.0, 1.0], 0.76) == 4
    assert energy_rank([1.0, 3.0], 0.9) == 1  # sorted here: 9 of 10 in the largest
    full = numpy_singular_values(np.random.default_rng(1).normal(size=(40, 16)))  # a full-rank change
    assert energy_rank(full, 1.0) == 16 and energy_rank(full, 0.9) < 16
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="energy"):
            energy_rank(full, bad)
    with pytest.raises(ValueError, match="finite"):
        energy_rank([1.0, np.nan], 0.9)


# --- the per-run file -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", [TIMM, CLIP], ids=["timm", "open_clip"])
def test_weight_change_of_a_backbone_against_numpy(cfg, tmp_path):
    torch.manual_seed(0)
    backbone = build_backbone(cfg, None)
    before = block_weights(backbone)
    assert len(before) == backbone.num_layers * 4 and all(t.device.type == "cpu" for t in before.values())
    # A rank-3 change of block 2's first MLP matrix, nothing else.
    params = dict(backbone.model.named_parameters())
    path = backbone.block_prefix.format(1) + backbone.block_matrices["fc1"]
    rows, cols = params[path].shape
    generator = torch.Generator().manual_seed(1)
    delta = torch.randn(rows, 3, generator=generator) @ torch.randn(3, cols, generator=generator)
    with torch.no_grad():
        params[path] += delta
    table = write_weight_change(before, backbone, tmp_path / "weight_change.parquet")
    assert pl.read_parquet(tmp_path / "weight_change.parquet").equals(table)
    assert table.height == backbone.num_layers * 4 and set(table["matrix"]) == MATRICES
    assert set(table["block"]) == set(range(1, backbone.num_layers + 1))
    changed = table.filter((pl.col("block") == 2) & (pl.col("matrix") == "fc1")).row(0, named=True)
    assert (changed["rows"], changed["cols"]) == (rows, cols) and len(changed["singular_values"]) == min(rows, cols)
    # dW in float64 of the float32 weights, as numpy gives it.
    expected = numpy_singular_values(params[path].detach().double().numpy() - before[path].double().numpy())
    np.testing.assert_allclose(changed["singular_values"], expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(changed["singular_values"][3:], 0.0, atol=1e-5)
    assert energy_rank(changed["singular_values"], 0.9) <= 3
    relative = np.linalg.norm(expected) / np.linalg.norm(before[path].double().numpy())
    assert changed["relative_change"] == pytest.approx(relative)
    others = table.filter(~((pl.col("block") == 2) & (pl.col("matrix") == "fc1")))
    assert all(energy_rank(s, 0.9) == 0 for s in others["singular_values"]) and (others["relative_change"] == 0).all()
    # `before` may be a Backbone or a state dict under the library's key names (open_clip's `visual.`), as an
    # imported fine-tuned model's importer has it.
    torch.manual_seed(0)
    pretrained = build_backbone(cfg, None)
    assert weight_change(pretrained, backbone).equals(table)
    library_keys = pretrained.state_dict()
    assert any(key.startswith(backbone.library_prefix + backbone.block_prefix.format(0)) for key in library_keys)
    assert weight_change(library_keys, backbone).equals(table)


def test_weight_change_names_a_missing_matrix():
    backbone = build_backbone(TIMM, None)
    before = block_weights(backbone)
    before.pop("blocks.1.mlp.fc2.weight")
    with pytest.raises(KeyError, match="blocks.1.mlp.fc2.weight"):
        weight_change(before, backbone)


# --- from a fine-tune -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from repdrift.data import build_dataset, write_dataset
    from repdrift.models import save_backbone_weights

    root = tmp_path_factory.mktemp("weight_change")
    labels = {"Training": list(range(7)) * 3, "Validation": list(range(7)), "Test": list(range(7))}
    dataset_dir = write_dataset(build_dataset("isic2018", fx.isic(root / "isic", labels)), root / "prepared")
    torch.manual_seed(0)
    weights = save_backbone_weights(build_backbone(TIMM), root / "weights.safetensors")
    return dataset_dir, weights


def finetune(inputs, out, method, checkpoint=False):
    import repdrift.training.finetune as training
    from repdrift.training.checkpoint import checkpoint_path

    dataset_dir, weights = inputs
    out.mkdir(parents=True, exist_ok=True)
    outputs = training.RunOutputs(
        *(out / name for name in ("model.safetensors", "history.parquet", "predictions.h5", "trajectory.h5")),
        weight_change=out / "weight_change.parquet",
    )
    training.finetune(
        TIMM,
        str(weights),
        dataset_dir,
        method,
        "cls",
        0,
        dict(epochs=2, batch_size=8, lr=1e-3),
        outputs,
        cka_samples=4,
        checkpoint=checkpoint_path(out) if checkpoint else None,
    )
    return pl.read_parquet(out / "weight_change.parquet")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["full", "scratch"])
def test_a_fine_tune_writes_the_change_since_it_started(inputs, tmp_path, method):
    from safetensors.torch import load_file

    import repdrift.training.finetune as training

    table = finetune(inputs, tmp_path, method)
    assert table.height == 2 * 4 and (table["relative_change"] > 0).all()
    # W_0: the pre-trained weights, Scratch's the random initialisation of its seed (as _setup draws it).
    if method == "scratch":
        training.seed_everything(0)
        start = block_weights(build_backbone(TIMM, None))
    else:
        start = load_file(inputs[1])
    end = load_file(tmp_path / "model.safetensors")  # backbone.* under the library's names
    for row in table.iter_rows(named=True):
        path = (
            f"blocks.{row['block'] - 1}."
            + {
                "qkv": "attn.qkv.weight",
                "proj": "attn.proj.weight",
                "fc1": "mlp.fc1.weight",
                "fc2": "mlp.fc2.weight",
            }[row["matrix"]]
        )
        expected = numpy_singular_values((end[f"backbone.{path}"].double() - start[path].double()).numpy())
        np.testing.assert_allclose(row["singular_values"], expected, rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_a_resumed_run_measures_the_same_change(inputs, tmp_path, monkeypatch):
    import repdrift.training.finetune as training

    whole = finetune(inputs, tmp_path / "whole", "full")
    calls, evaluate = [0], training.evaluate

    class Killed(Exception):
        pass

    def dying(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 2:  # epoch 1 done and checkpointed, killed in epoch 2
            raise Killed
        return evaluate(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(training, "evaluate", dying)
        with pytest.raises(Killed):
            finetune(inputs, tmp_path / "resumed", "full", checkpoint=True)
    assert not (tmp_path / "resumed/weight_change.parquet").exists()
    assert finetune(inputs, tmp_path / "resumed", "full", checkpoint=True).equals(whole)


# --- the study table, runs.parquet's rows, the figure -----------------------------------------------------------------
def write_run_file(path, spectra: dict[tuple[int, str], list[float]], width: int = 4):
    rows = [
        dict(block=b, matrix=m, rows=3 * width if m == "qkv" else width, cols=width, singular_values=s)
        for (b, m), s in spectra.items()
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows).with_columns(relative_change=pl.lit(0.1)).write_parquet(path)
    return str(path)


def run_keys(method, seed, backbone="vit"):
    run = f"isic/{backbone}/{method}-cls/seed{seed}"
    return dict(run=run, dataset="isic", backbone=backbone, method=method, pool="cls", seed=str(seed))


def test_change_table_and_run_rows(tmp_path):
    full = {(b, m): [4.0, 1.0, 1.0, 1.0] for b in (1, 2) for m in sorted(MATRICES)}  # 16 of 19 in the first
    lora = {(b, m): [1.0, 1.0, 0.0, 0.0] for b in (1, 2) for m in sorted(MATRICES)}
    lora[(1, "qkv")] = [0.0, 0.0, 0.0, 0.0]
    runs = [run_keys("full", 0), run_keys("full", 1), run_keys("lora8", 0)]
    files = [
        write_run_file(tmp_path / "a.parquet", full),
        write_run_file(tmp_path / "b.parquet", full),
        write_run_file(tmp_path / "c.parquet", lora),
    ]
    table = change_table(runs, files, 0.9)
    assert table.height == 3 * 8 and (table["full_rank"] == 4).all() and (table["energy"] == 0.9).all()
    assert table["seed"].dtype == pl.Int64
    assert set(table.filter(pl.col("method") == "full")["rank"]) == {3}  # 16 + 1 = 17 < 17.1 of 19; 18 >= 17.1
    lora_ranks = table.filter(pl.col("method") == "lora8").sort("block", "matrix")
    assert lora_ranks.filter((pl.col("block") == 1) & (pl.col("matrix") == "qkv"))["rank"].item() == 0
    assert set(lora_ranks["rank"]) == {0, 2}
    # The threshold is the analysis's: at 0.8, Full's first singular value (16 of 19) is enough.
    assert set(change_table(runs[:1], files[:1], 0.8)["rank"]) == {1}
    rows = change_run_rows(table)
    assert rows.columns == ["run", "dataset", "backbone", "method", "pool", "seed", "metric", "layer", "value"]
    assert rows["layer"].is_null().all()
    value = {(r["run"], r["metric"]): r["value"] for r in rows.iter_rows(named=True)}
    assert value[("isic/vit/full-cls/seed0", "change_rank")] == 3.0
    assert value[("isic/vit/full-cls/seed0", "change_rank_fraction")] == 0.75
    assert value[("isic/vit/lora8-cls/seed0", "change_rank")] == 2.0  # median of seven 2s and one 0
    assert value[("isic/vit/lora8-cls/seed0", "change_relative")] == pytest.approx(0.1)
    # No trained run: an empty table of the same columns.
    empty = change_table([], [], 0.9)
    assert empty.height == 0 and empty.columns == table.columns and change_run_rows(empty).height == 0


def test_aggregate_writes_the_table_and_the_run_metrics(tmp_path, monkeypatch):
    import repdrift.analysis.tables as tables

    def fake_run_rows(run, *files):
        frame = pl.DataFrame({"metric": ["score"], "layer": [None], "value": [0.5]}, schema=tables.LONG_SCHEMA)
        return tables._with_keys(frame, run)

    monkeypatch.setattr(tables, "run_rows", fake_run_rows)
    monkeypatch.setattr(tables, "trajectory_rows", fake_run_rows)
    monkeypatch.setattr(tables, "score_baselines", lambda folder: dict(majority=0.1, chance=0.1))
    knn = tmp_path / "pretrained/vit/knn_cls.parquet"
    knn.parent.mkdir(parents=True)
    pl.DataFrame(dict(k=[5], accuracy=[0.5], ece=[0.1], pool=["cls"])).write_parquet(knn)
    runs = [run_keys("full", 0), run_keys("linear", 0)]
    spectra = {(b, m): [1.0, 1.0, 0.0, 0.0] for b in (1, 2) for m in sorted(MATRICES)}
    names = ("runs", "trajectories", "pretrained", "grids")
    outs = {f"{name}_out": str(tmp_path / f"{name}.parquet") for name in names}
    tables.aggregate(
        runs,
        *([["x", "x"]] * 5),
        [str(knn)],
        [{**r, "grids": ["g"]} for r in runs],
        {},
        {"isic": "x"},
        **outs,
        weight_change=[write_run_file(tmp_path / "full.parquet", spectra)],
        change_runs=runs[:1],
        change_energy=0.9,
        weight_change_out=str(tmp_path / "weight_change.parquet"),
    )
    study = pl.read_parquet(tmp_path / "weight_change.parquet")
    assert set(study["run"]) == {"isic/vit/full-cls/seed0"} and set(study["rank"]) == {2}
    runs_table = pl.read_parquet(outs["runs_out"])
    ranks = runs_table.filter(pl.col("metric") == "change_rank")
    assert ranks["run"].to_list() == ["isic/vit/full-cls/seed0"] and ranks["value"].to_list() == [2.0]
    assert set(runs_table["metric"]) == {"score", "change_rank", "change_rank_fraction", "change_relative"}


def test_figure_and_caption(tmp_path):
    from repdrift.report.plots import save_chart

    spectra = {
        "full": {(b, m): [3.0, 2.0, 2.0, 1.0] for b in (1, 2) for m in sorted(MATRICES)},
        "lora4": {(b, m): [1.0, 0.0, 0.0, 0.0] for b in (1, 2) for m in sorted(MATRICES)},
    }
    runs, files = [], []
    for method, spectrum in spectra.items():
        for seed in (0, 1):
            runs.append(run_keys(method, seed))
            files.append(write_run_file(tmp_path / f"{method}{seed}.parquet", spectrum))
    runs.append(run_keys("full", 0) | dict(dataset="chest", run="chest/vit/full-cls/seed0"))  # another dataset
    files.append(write_run_file(tmp_path / "chest.parquet", spectra["lora4"]))
    table = change_table(runs, files, 0.9)
    grids = pl.DataFrame(dict(grid=["similarity", "other"], dataset=["isic", "chest"], pool=["cls", "cls"]))
    dataset, pool = cell_of(grids, "similarity")
    blocks = per_block(table, dataset, pool)
    assert blocks.height == 2 * 2 * 4 and set(blocks["seeds"]) == {2}
    assert set(blocks.filter(pl.col("method") == "full")["rank"]) == {3.0}  # the chest run is left out
    caption = change_rank_caption(blocks, dataset, pool, 0.9)
    assert "90 %" in caption and "isic (cls pool)" in caption
    assert "full 3 (3-3) of 4" in caption and "lora4 1 (1-1) of 4" in caption
    assert "Full's median rank is 0.75x LoRA's r = 4" in caption
    save_chart(change_rank_chart(blocks), tmp_path / "change_rank.html", tmp_path / "change_rank.svg")
    assert (tmp_path / "change_rank.svg").read_text().lstrip().startswith("<svg")
    assert "no trained run" in change_rank_caption(blocks.head(0), "isic", "cls", 0.9)
