"""A model's features on one dataset, streamed batch by batch into a feature file (`repdrift.formats.features`)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from repdrift.data import Dataset, read_dataset
from repdrift.data.loader import ManifestImages, loader_workers
from repdrift.data.manifest import label_column
from repdrift.formats.features import FeatureWriter, cka_sample, file_sha256
from repdrift.models import build_backbone


def feature_rows(manifest: pl.DataFrame, final_splits: list[str], cka_samples: int) -> pl.DataFrame:
    """The images to run, sorted by (split, sample_id), with their row in `final/` (`final_at`) and in `layers/`
    (`layers_at`), -1 where an image has none: every image of `final_splits`, and the CKA sample of the test
    split (the same evenly spaced images `finetune` picks) when `cka_samples` > 0."""
    manifest = manifest.sort("split", "sample_id")
    test_ids = manifest.filter(pl.col("split") == "test")["sample_id"]
    sample = test_ids.gather(cka_sample(len(test_ids), cka_samples)) if cka_samples and len(test_ids) else []
    in_final = pl.col("split").is_in(final_splits)
    in_sample = pl.col("sample_id").is_in(list(sample)) & (pl.col("split") == "test")
    rows = manifest.filter(in_final | in_sample)
    return rows.with_columns(
        final_at=pl.when(in_final).then(in_final.cast(pl.Int64).cum_sum() - 1).otherwise(-1),
        layers_at=pl.when(in_sample).then(in_sample.cast(pl.Int64).cum_sum() - 1).otherwise(-1),
    )


class FeatureSource(NamedTuple):
    dataset: Dataset
    rows: pl.DataFrame  # feature_rows
    images: ManifestImages


def feature_source(
    backbone, dataset_dir: str | Path, final_splits: list[str], cka_samples: int, keep: bool = False
) -> FeatureSource:
    """The images `extract_features` runs; with `keep` (and no loader workers), transformed once and held in
    memory for every model the job extracts (WiSE-FT's several a)."""
    dataset = read_dataset(dataset_dir)
    rows = feature_rows(dataset.manifest, final_splits, cka_samples)
    held = "transformed" if keep and loader_workers() == 0 else None
    images = ManifestImages(rows, backbone.transform(False), dataset.task, len(dataset.classes), keep=held)
    return FeatureSource(dataset, rows, images)


@torch.no_grad()
def extract_features(
    backbone,
    dataset_dir: str | Path,
    out_path: str | Path,
    *,
    final_splits: list[str],
    cka_samples: int,
    pools: list[str],
    batch_size: int,
    dtype: str,
    weights_path: str | Path | None,
    source: FeatureSource | None = None,
) -> None:
    """Write `backbone`'s feature file on the dataset in `dataset_dir`: the final representation of every image of
    `final_splits` and every layer of the CKA sample, in `pools`. One forward pass per batch; memory does not grow
    with the number of images. `source` (`feature_source`, same dataset and arguments) lets several models of one
    job share the decoded images."""
    if source is None:
        source = feature_source(backbone, dataset_dir, final_splits, cka_samples)
    dataset, rows, images = source
    final_at, layers_at = rows["final_at"].to_numpy(), rows["layers_at"].to_numpy()
    n_final, n_layers = int((final_at >= 0).sum()), int((layers_at >= 0).sum())
    depth, dim = backbone.num_layers + 1, backbone.embed_dim
    attrs = dict(
        model=getattr(backbone, "name", ""),
        weights_sha256=file_sha256(weights_path) if weights_path else "random-init",
        manifest_sha256=file_sha256(Path(dataset_dir) / "manifest.parquet"),
        image_size=backbone.img_size,
        layers=backbone.num_layers,
        task=dataset.task,
        splits=list(final_splits),
        cka_samples=n_layers,
        pools=list(pools),
    )
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    backbone.to(device).eval()
    loader = DataLoader(images, batch_size=batch_size, num_workers=loader_workers(), pin_memory=cuda)
    with FeatureWriter(out_path, attrs, dtype) as out:
        for pool in pools:
            if n_final:
                out.create(f"final/{pool}", (n_final, dim))
            if n_layers:
                out.create(f"layers/{pool}", (depth, n_layers, dim))
        start = 0
        for batch, _, _ in tqdm(loader, desc="features", leave=False):
            batch = batch.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                reps = backbone.representations(batch, pools)
            at = slice(start, start + len(batch))
            start += len(batch)
            to_final, to_layers = final_at[at] >= 0, layers_at[at] >= 0
            for pool in pools:
                rep = reps[pool].float().cpu().numpy()
                if to_final.any():
                    out.write(f"final/{pool}", _span(final_at[at][to_final]), rep[-1, to_final])
                if to_layers.any():
                    out.write(f"layers/{pool}", np.s_[:, _span(layers_at[at][to_layers])], rep[:, to_layers])
        final_rows, sample_rows = rows.filter(pl.col("final_at") >= 0), rows.filter(pl.col("layers_at") >= 0)
        if n_final:
            out.strings("sample_id", final_rows["sample_id"].to_list())
            out.strings("split", final_rows["split"].to_list())
            out.array("targets", np.asarray(final_rows[label_column(dataset.task)].to_list()))
        if n_layers:
            out.strings("layers_sample_id", sample_rows["sample_id"].to_list())


def _span(positions: np.ndarray) -> slice:
    # Rows are numbered in loader order, so a batch's rows of one kind are consecutive.
    return slice(int(positions[0]), int(positions[-1]) + 1)


def pretrained_features(
    backbone_cfg: dict, weights: str, dataset_dir: str | Path, out_path: str | Path, **options
) -> None:
    """A pre-trained backbone's feature file of one dataset (`extract_features`'s options: the k-NN dataset's
    `final_splits`, a target dataset's `cka_samples`)."""
    extract_features(build_backbone(backbone_cfg, weights), dataset_dir, out_path, weights_path=weights, **options)
