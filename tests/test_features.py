"""HDF5 feature, trajectory and prediction files: round trip, layout, atomic write, clear errors."""

import h5py
import numpy as np
import pytest

from repdrift.errors import DataError
from repdrift.features import read_features, read_trajectory, write_features, write_trajectory
from repdrift.predictions import Predictions, read_predictions, write_predictions


def _write(path, n=7, layers=3, dim=5):
    rng = np.random.default_rng(0)
    feats = {p: rng.normal(size=(layers, n, dim)) for p in ("cls", "mean")}
    final = {p: rng.normal(size=(n, dim)) for p in ("cls", "mean")}
    ids = np.array([f"img {i}" for i in range(n)])
    split = np.array(["train"] * 4 + ["test"] * (n - 4))
    targets = np.arange(n) % 3
    write_features(path, feats, final, ids, split, targets, attrs={"model": "m", "layers": layers})
    return feats, final, ids, split, targets


def test_feature_round_trip_and_layout(tmp_path):
    path = tmp_path / "f.h5"
    feats, final, ids, split, targets = _write(path)
    fs = read_features(path, "mean")
    np.testing.assert_allclose(fs.layers, feats["mean"].astype("float32"))
    np.testing.assert_allclose(fs.final, final["mean"].astype("float32"))
    assert list(fs.sample_id) == list(ids) and list(fs.split) == list(split)
    np.testing.assert_array_equal(fs.targets, targets)
    assert fs.attrs["model"] == "m" and list(fs.attrs["pools"]) == ["cls", "mean"]
    with h5py.File(path) as h5:
        assert h5["features/cls"].chunks == (1, 7, 5)  # one layer is one contiguous chunk
    test = fs.select("test")
    assert test.layers.shape == (3, 3, 5) and list(test.sample_id) == list(ids[4:])
    assert not (tmp_path / "f.h5.tmp").exists()


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


def test_trajectory_and_predictions_round_trip(tmp_path):
    traj = np.random.default_rng(1).normal(size=(4, 2, 6, 3))
    write_trajectory(tmp_path / "t.h5", traj, np.array(list("abcdef")), {"pool": "cls"})
    got, ids, attrs = read_trajectory(tmp_path / "t.h5")
    np.testing.assert_allclose(got, traj.astype("float32"))
    assert list(ids) == list("abcdef") and attrs["pool"] == "cls"

    preds = Predictions(np.full((3, 2), 0.5), np.array([0, 1, 1]), np.array(["x", "y", "z"]), "binary", ["neg", "pos"])
    write_predictions(tmp_path / "p.h5", preds)
    back = read_predictions(tmp_path / "p.h5")
    np.testing.assert_array_equal(back.probs, preds.probs)
    assert back.classes == ["neg", "pos"] and back.task == "binary"
    with pytest.raises(DataError, match="missing.h5"):
        read_predictions(tmp_path / "missing.h5")
