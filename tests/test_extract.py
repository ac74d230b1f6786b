"""Feature extraction keeps only what is measured, streams it batch by batch, and matches the trajectory's images."""

import re
from pathlib import Path

import data_fixtures as fx
import h5py
import numpy as np
import polars as pl
import pytest
import torch
from tiny_models import VIT

from repdrift.data import build_dataset, read_dataset, write_dataset
from repdrift.data.images import load_image
from repdrift.formats.features import cka_sample, read_features, read_layers
from repdrift.measurement.extract import extract_features, feature_rows, feature_source
from repdrift.models import build_backbone

BACKBONE = VIT


@pytest.fixture(scope="module")
def natural(tmp_path_factory):
    root = tmp_path_factory.mktemp("extract")
    return write_dataset(build_dataset("imagenet", fx.imagenet(root / "raw", n_train=6, n_val=5)), root / "prepared")


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    return build_backbone(BACKBONE).eval()


def reference(backbone, dataset_dir, ids):
    """Every layer and the final representation of `ids`, in one batch, through the model's plain forward."""
    dataset = read_dataset(dataset_dir)
    by_id = {sid: path for sid, path in zip(dataset.manifest["sample_id"], dataset.manifest["path"])}

    transform = backbone.transform(False)
    images = torch.stack([transform(load_image(by_id[sid])) for sid in ids])
    with torch.no_grad():
        return {pool: backbone.representations(images, (pool,))[pool].numpy() for pool in ("cls", "mean")}, images


def test_rows_number_each_kind_in_loader_order(natural):
    manifest = read_dataset(natural).manifest
    rows = feature_rows(manifest, ["train", "test"], 4)
    assert rows["split"].to_list() == sorted(rows["split"].to_list())
    assert rows.filter(rows["final_at"] >= 0)["final_at"].to_list() == list(range(len(rows)))
    test = manifest.filter(manifest["split"] == "test").sort("sample_id")["sample_id"]
    sampled = rows.filter(rows["layers_at"] >= 0)
    assert sampled["sample_id"].to_list() == test.gather(cka_sample(len(test), 4)).to_list()
    assert sampled["layers_at"].to_list() == [0, 1, 2, 3]
    only_sample = feature_rows(manifest, [], 4)
    assert len(only_sample) == 4 and set(only_sample["final_at"]) == {-1}


def test_a_knn_file_holds_final_representations_only(natural, backbone, tmp_path):
    out = tmp_path / "natural.h5"
    extract_features(
        backbone,
        natural,
        out,
        final_splits=["train", "test"],
        cka_samples=0,
        pools=["mean"],
        batch_size=4,
        dtype="float32",
        weights_path=None,
    )
    with h5py.File(out) as h5:
        assert set(h5) == {"final", "sample_id", "split", "targets"} and list(h5["final"]) == ["mean"]
    features = read_features(out, "mean")
    expected, _ = reference(backbone, natural, list(features.sample_id))
    np.testing.assert_allclose(features.final, expected["mean"][-1], rtol=1e-5, atol=1e-5)
    manifest = read_dataset(natural).manifest.sort("split", "sample_id")
    assert list(features.sample_id) == manifest.filter(manifest["split"] != "val")["sample_id"].to_list()
    np.testing.assert_array_equal(features.targets, manifest.filter(manifest["split"] != "val")["label"].to_numpy())


def test_a_shared_source_decodes_once_and_writes_the_same_file(natural, backbone, tmp_path, monkeypatch):
    options = dict(final_splits=["train", "test"], cka_samples=0, pools=["cls"], batch_size=4, dtype="float32")
    extract_features(backbone, natural, tmp_path / "alone.h5", weights_path=None, **options)
    source = feature_source(backbone, natural, ["train", "test"], 0, keep=True)
    decoded = []
    monkeypatch.setattr("repdrift.data.loader.load_image", lambda path: decoded.append(path) or load_image(path))
    for name in ("first.h5", "second.h5"):  # e.g. two WiSE-FT a of one job
        extract_features(backbone, natural, tmp_path / name, weights_path=None, source=source, **options)
    assert len(decoded) == len(set(decoded)) == len(source.rows)  # each image decoded once for both files
    alone = read_features(tmp_path / "alone.h5", "cls").final
    for name in ("first.h5", "second.h5"):
        np.testing.assert_array_equal(read_features(tmp_path / name, "cls").final, alone)


def test_a_target_file_holds_every_layer_of_the_cka_sample(natural, backbone, tmp_path):
    out = tmp_path / "target.h5"
    extract_features(
        backbone,
        natural,
        out,
        final_splits=[],
        cka_samples=5,
        pools=["cls", "mean"],
        batch_size=2,
        dtype="float32",
        weights_path=None,
    )
    with h5py.File(out) as h5:
        assert set(h5) == {"layers", "layers_sample_id"} and h5.attrs["cka_samples"] == 5
    for pool in ("cls", "mean"):
        layers, ids = read_layers(out, pool)
        assert layers.shape == (backbone.num_layers + 1, 5, backbone.embed_dim)
        expected, _ = reference(backbone, natural, list(ids))
        np.testing.assert_allclose(layers, expected[pool], rtol=1e-5, atol=1e-5)


def test_float16_storage_error_is_at_half_precision(natural, backbone, tmp_path):
    for dtype in ("float32", "float16"):
        extract_features(
            backbone,
            natural,
            tmp_path / f"{dtype}.h5",
            final_splits=["test"],
            cka_samples=0,
            pools=["cls"],
            batch_size=8,
            dtype=dtype,
            weights_path=None,
        )
    full, half = (read_features(tmp_path / f"{d}.h5", "cls").final for d in ("float32", "float16"))
    assert half.dtype == np.float32
    np.testing.assert_allclose(half, full, rtol=2**-10, atol=1e-4)


def documented_layout() -> tuple[set[str], set[str]]:
    """The feature file's datasets (pool `cls`) and root attributes, as docs/architecture.md lists them."""
    text = (Path(__file__).resolve().parents[1] / "docs/architecture.md").read_text()
    section = text[text.index("### Feature file (HDF5)") : text.index("### Trajectory (HDF5)")]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    datasets = {name.replace("{pool}", "cls") for row in rows for name in re.findall(r"`([^`]+)`", row)}
    attributes = section[section.index("Root attributes:") : section.index("The CKA sample")]
    return datasets, {name for name in re.findall(r"`([^`]+)`", attributes) if not name.endswith("/")}


def test_the_documented_layout_is_the_written_one(natural, backbone, tmp_path):
    out = tmp_path / "both.h5"  # a k-NN file that is also a CKA reference: every documented dataset
    extract_features(
        backbone,
        natural,
        out,
        final_splits=["train", "test"],
        cka_samples=3,
        pools=["cls"],
        batch_size=4,
        dtype="float32",
        weights_path=None,
    )
    with h5py.File(out) as h5:
        written = set()
        h5.visititems(lambda name, item: written.add(name) if isinstance(item, h5py.Dataset) else None)
        attributes = set(h5.attrs)
    datasets, documented_attributes = documented_layout()
    assert written == datasets
    assert attributes == documented_attributes


def test_each_cka_reference_takes_its_own_datasets_sample_size(natural, tmp_path):
    from repdrift.formats.features import WHOLE_SPLIT
    from repdrift.measurement.extract import pretrained_features

    options = dict(final_splits=[], pools=["cls"], batch_size=4, dtype="float32")
    # `all` (cka.dataset_samples) is WHOLE_SPLIT: every test image, however many.
    for name, n in (("three.h5", 3), ("all.h5", WHOLE_SPLIT)):
        pretrained_features(BACKBONE, None, natural, tmp_path / name, cka_samples=n, **options)
    tests = read_dataset(natural).manifest.filter(pl.col("split") == "test").height
    for name, n in (("three.h5", 3), ("all.h5", tests)):
        with h5py.File(tmp_path / name) as h5:
            assert h5.attrs["cka_samples"] == n and h5["layers_sample_id"].shape == (n,)
            assert "final" not in h5  # a target dataset's file: its CKA sample only
