"""Fixtures shared by several test modules (pytest finds them here; no test module imports another)."""

import h5py
import numpy as np
import polars as pl
import pytest
from safetensors.torch import load_file

TIMING = ("seconds", "images_per_s")  # history columns that measure the machine, not the run


def _same_run_outputs(a, b):
    """The two run folders hold the same model, history (less timings), predictions, trajectory and weight change."""
    ha, hb = pl.read_parquet(a / "history.parquet"), pl.read_parquet(b / "history.parquet")
    assert ha.drop(TIMING).equals(hb.drop(TIMING))
    ma, mb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert ma.keys() == mb.keys() and all(ma[k].equal(mb[k]) for k in ma)
    for name, key in (("predictions.h5", "probs"), ("trajectory.h5", "features")):
        with h5py.File(a / name) as fa, h5py.File(b / name) as fb:
            np.testing.assert_array_equal(fa[key][()], fb[key][()])
    # A trained run's weight change, when its writer asked for one (rule finetune does).
    assert (a / "weight_change.parquet").exists() == (b / "weight_change.parquet").exists()
    if (a / "weight_change.parquet").exists():
        assert pl.read_parquet(a / "weight_change.parquet").equals(pl.read_parquet(b / "weight_change.parquet"))


@pytest.fixture
def assert_same_run_outputs():
    return _same_run_outputs
