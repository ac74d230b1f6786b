"""HDF5 feature, trajectory and prediction files: round trip, layout, atomic write, clear errors."""

import h5py
import numpy as np
import pytest

from repdrift.errors import DataError
from repdrift.formats.features import (
    FeatureWriter,
    Trajectory,
    cka_sample,
    read_features,
    read_layers,
    write_features,
    write_trajectory,
)
from repdrift.formats.predictions import Predictions, read_predictions, write_predictions


def _write(path, n=7, layers=3, dim=5, dtype="float32"):
    rng = np.random.default_rng(0)
    final = {p: rng.normal(size=(n, dim)) for p in ("cls", "mean")}
    sample = {p: rng.normal(size=(layers + 1, 2, dim)) for p in ("cls", "mean")}
    ids = np.array([f"img {i}" for i in range(n)])
    split = np.array(["train"] * 4 + ["test"] * (n - 4))
    targets = np.arange(n) % 3
    write_features(
        path,
        final,
        ids,
        split,
        targets,
        layers=sample,
        layers_sample_id=ids[-2:],
        attrs={"model": "m", "layers": layers},
        dtype=dtype,
    )
    return final, sample, ids, split, targets


def test_feature_round_trip_and_layout(tmp_path):
    path = tmp_path / "f.h5"
    final, sample, ids, split, targets = _write(path)
    fs = read_features(path, "mean")
    np.testing.assert_allclose(fs.final, final["mean"].astype("float32"))
    assert list(fs.sample_id) == list(ids) and list(fs.split) == list(split)
    np.testing.assert_array_equal(fs.targets, targets)
    assert fs.attrs["model"] == "m" and list(fs.attrs["pools"]) == ["cls", "mean"]
    layers, layer_ids = read_layers(path, "cls")
    np.testing.assert_allclose(layers, sample["cls"].astype("float32"))
    assert list(layer_ids) == list(ids[-2:])
    with h5py.File(path) as h5:
        assert h5["final/cls"].chunks == (7, 5)  # along samples: whole rows
        assert h5["layers/cls"].chunks == (1, 2, 5)
        assert set(h5) == {"final", "layers", "sample_id", "split", "targets", "layers_sample_id"}
    test = fs.select("test")
    assert test.final.shape == (3, 5) and list(test.sample_id) == list(ids[4:])
    assert [p.name for p in tmp_path.iterdir()] == ["f.h5"]  # no temporary file left


def test_float16_storage_halves_the_bytes_and_reads_back_as_float32(tmp_path):
    final, *_ = _write(tmp_path / "f16.h5", n=500, dim=64, dtype="float16")
    _write(tmp_path / "f32.h5", n=500, dim=64)
    with h5py.File(tmp_path / "f16.h5") as h5:
        assert h5["final/cls"].dtype == np.float16 and h5.attrs["dtype"] == "float16"
    back = read_features(tmp_path / "f16.h5", "cls").final
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, final["cls"], rtol=1e-3, atol=1e-4)
    sizes = []
    for name in ("f16.h5", "f32.h5"):
        with h5py.File(tmp_path / name) as h5:
            sizes.append(sum(h5[key].id.get_storage_size() for key in ("final/cls", "final/mean", "layers/cls")))
    assert sizes[0] == sizes[1] // 2


def test_a_failed_writer_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError):
        with FeatureWriter(tmp_path / "f.h5", {"model": "m"}) as out:
            out.create("final/cls", (10, 4))
            raise RuntimeError("killed mid-extraction")
    assert list(tmp_path.iterdir()) == []


def test_feature_errors_name_the_file(tmp_path):
    path = tmp_path / "f.h5"
    _write(path)
    with pytest.raises(DataError, match="pool 'patch'"):
        read_features(path, "patch")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="bad.h5"):
        read_features(bad, "cls")
    with pytest.raises(DataError, match="split 'val'"):
        read_features(path, "cls").select("val")
    only_final = tmp_path / "final.h5"
    write_features(only_final, {"cls": np.zeros((2, 3))}, ["a", "b"], ["test"] * 2, [0, 1])
    with pytest.raises(DataError, match="final.h5: no layers features"):
        read_layers(only_final, "cls")
    with pytest.raises(DataError, match="float64"):
        write_features(only_final, {"cls": np.zeros((2, 3))}, ["a", "b"], ["test"] * 2, [0, 1], dtype="float64")


def test_cka_sample_is_evenly_spaced_and_all_when_small():
    assert list(cka_sample(10, 4)) == [0, 3, 6, 9]
    assert list(cka_sample(3, 8)) == [0, 1, 2]
    assert list(cka_sample(1, 8)) == [0]


def test_trajectory_and_predictions_round_trip(tmp_path):
    traj = np.random.default_rng(1).normal(size=(4, 2, 6, 3))
    write_trajectory(tmp_path / "t.h5", traj, np.array(list("abcdef")), {"pool": "cls"})
    got = Trajectory(tmp_path / "t.h5")
    assert len(got) == 4 and got.shape == traj.shape
    for epoch in range(4):
        np.testing.assert_allclose(got[epoch], traj[epoch].astype("float32"))
    assert list(got.sample_id) == list("abcdef") and got.attrs["pool"] == "cls"
    with pytest.raises(DataError, match="missing.h5"):
        Trajectory(tmp_path / "missing.h5")

    preds = Predictions(np.full((3, 2), 0.5), np.array([0, 1, 1]), np.array(["x", "y", "z"]), "binary", ["neg", "pos"])
    write_predictions(tmp_path / "p.h5", preds)
    back = read_predictions(tmp_path / "p.h5")
    np.testing.assert_array_equal(back.probs, preds.probs)
    assert back.classes == ["neg", "pos"] and back.task == "binary"
    with pytest.raises(DataError, match="missing.h5"):
        read_predictions(tmp_path / "missing.h5")
