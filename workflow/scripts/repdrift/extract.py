"""Layer-wise features of a model (pre-trained or fine-tuned) on chosen splits of a dataset, into HDF5."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from repdrift.data import read_dataset
from repdrift.data.loader import ManifestImages, loader_workers
from repdrift.features import file_sha256, write_features
from repdrift.models import build_backbone

POOLS = ("cls", "mean")


@torch.no_grad()
def compute_features(backbone, dataset: ManifestImages, batch_size: int) -> tuple[dict, dict]:
    """Every block's pooled tokens (L, n, D) and the final representation (n, D), for both pools: one forward
    pass per batch."""
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    backbone.to(device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=loader_workers(), pin_memory=cuda)
    layers = {pool: [] for pool in POOLS}
    final = {pool: [] for pool in POOLS}
    for images, _, _ in tqdm(loader, desc="features", leave=False):
        images = images.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            reps = backbone.representations(images, POOLS)
        for pool in POOLS:
            layers[pool].append(reps[pool][:-1].float().cpu())
            final[pool].append(reps[pool][-1].float().cpu())
    return (
        {pool: torch.cat(chunks, dim=1).numpy() for pool, chunks in layers.items()},
        {pool: torch.cat(chunks, dim=0).numpy() for pool, chunks in final.items()},
    )


def extract_features(
    backbone,
    dataset_dir: str | Path,
    splits: list[str],
    out_path: str | Path,
    batch_size: int,
    weights_path: str | Path | None,
) -> None:
    """Write the feature file of `backbone` on the given splits of the dataset in `dataset_dir`."""
    dataset = read_dataset(dataset_dir)
    manifest = dataset.manifest.filter(pl.col("split").is_in(splits)).sort("split", "sample_id")
    images = ManifestImages(manifest, backbone.transform(False), dataset.task, len(dataset.classes))
    layers, final = compute_features(backbone, images, batch_size)
    target_column = "labels" if dataset.task == "multilabel" else "label"
    targets = np.asarray(manifest[target_column].to_list())
    write_features(
        out_path,
        layers,
        final,
        sample_id=manifest["sample_id"].to_numpy(),
        split=manifest["split"].to_numpy(),
        targets=targets,
        attrs=dict(
            model=getattr(backbone, "name", ""),
            weights_sha256=file_sha256(weights_path) if weights_path else "random-init",
            manifest_sha256=file_sha256(Path(dataset_dir) / "manifest.parquet"),
            image_size=backbone.img_size,
            layers=layers[POOLS[0]].shape[0],
            task=dataset.task,
            splits=list(splits),
        ),
    )


def pretrained_features(backbone_cfg: dict, weights: str, dataset_dir, splits, out_path, batch_size) -> None:
    extract_features(build_backbone(backbone_cfg, weights), dataset_dir, splits, out_path, batch_size, weights)


def finetuned_features(backbone_cfg: dict, model_path, jobs: list[tuple], batch_size: int) -> None:
    """`jobs` = [(dataset_dir, splits, out_path), ...]: one model load, several feature files."""
    from repdrift.training import load_classifier

    backbone = load_classifier(backbone_cfg, model_path).backbone
    for dataset_dir, splits, out_path in jobs:
        extract_features(backbone, dataset_dir, splits, out_path, batch_size, model_path)
