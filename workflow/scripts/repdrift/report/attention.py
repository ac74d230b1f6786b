"""Attention maps (paper Fig. 3): last-block CLS attention of a pre-trained model and of its fine-tuned models (one
per pool: the paper's CLS and Feat = mean of patch tokens), overlaid on natural-domain images of different classes.
One PNG per backbone: a header row, then a row per image, columns image | pre-trained | fine-tuned (CLS) | ....
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import torch
from PIL import Image, ImageDraw

from repdrift.data import read_dataset
from repdrift.data.images import load_image
from repdrift.models import build_backbone
from repdrift.training.finetune import load_classifier

TILE = 128  # pixels per panel: the demo's 32-px images are enlarged so the patch grid is visible


@torch.no_grad()
def cls_attention(backbone, images: torch.Tensor) -> np.ndarray:
    """(B, h, w): the CLS token's attention to each patch in the last block, averaged over heads, summing to 1."""
    attention = backbone.last_attention(images)  # (B, heads, 1 + N, 1 + N)
    to_patches = attention[:, :, 0, 1:].mean(dim=1)
    to_patches = to_patches / to_patches.sum(dim=1, keepdim=True)
    side = int(round(to_patches.shape[1] ** 0.5))
    return to_patches.reshape(-1, side, side).float().numpy()


def _heat_colours(values: np.ndarray) -> np.ndarray:
    """A black-red-yellow ramp for values in [0, 1] (no plotting library needed for one colour map)."""
    v = np.clip(values, 0, 1)[..., None]
    return np.concatenate([np.clip(2 * v, 0, 1), np.clip(2 * v - 1, 0, 1), np.zeros_like(v)], axis=-1) * 255


def overlay(image: Image.Image, attention: np.ndarray, alpha: float = 0.55) -> Image.Image:
    base = np.asarray(image.convert("RGB").resize((TILE, TILE), Image.Resampling.BICUBIC), dtype=np.float64)
    spread = attention.max() - attention.min()  # min-max scaled: near-uniform maps still show their contrast
    scaled = (attention - attention.min()) / spread if spread > 0 else np.zeros_like(attention)
    heat = Image.fromarray(_heat_colours(scaled).astype(np.uint8)).resize((TILE, TILE), Image.Resampling.NEAREST)
    blended = (1 - alpha) * base + alpha * np.asarray(heat, dtype=np.float64)
    return Image.fromarray(blended.round().astype(np.uint8))


POOL_NAMES = {"cls": "CLS", "mean": "Feat (mean)"}
HEADER = 18  # pixels of the column titles


def pick_images(manifest: pl.DataFrame, n_images: int) -> pl.DataFrame:
    """A fixed set of test images of different classes: the first (by sample id) of n classes evenly spaced over
    the classes present, so the rows do not all show one class."""
    test = manifest.filter(pl.col("split") == "test").sort("label", "sample_id")
    classes = test["label"].unique().sort().to_numpy()
    chosen = classes[np.unique(np.linspace(0, classes.size - 1, min(n_images, classes.size)).round().astype(int))]
    return test.filter(pl.col("label").is_in(chosen.tolist())).group_by("label", maintain_order=True).first()


def attention_figure(
    backbone_cfg: dict, weights, model_paths: list, pools: list[str], dataset_dir, n_images: int, out_path
) -> dict:
    """Write the PNG and return the mean entropy (nats) of the attention maps of each model."""
    dataset = read_dataset(dataset_dir)
    rows = pick_images(dataset.manifest, n_images)
    pretrained = build_backbone(backbone_cfg, weights).eval()
    models = {"pre-trained": pretrained}
    for pool, path in zip(pools, model_paths, strict=True):
        models[f"fine-tuned {POOL_NAMES[pool]}"] = load_classifier(backbone_cfg, path).backbone.eval()
    pictures = [load_image(path) for path in rows["path"]]
    batch = torch.stack([pretrained.transform(False)(p) for p in pictures])
    maps = {name: cls_attention(model, batch) for name, model in models.items()}

    sheet = Image.new("RGB", ((1 + len(maps)) * TILE, HEADER + len(pictures) * TILE), "white")
    draw = ImageDraw.Draw(sheet)
    for col, title in enumerate(["image", *maps]):
        draw.text((col * TILE + 4, 3), title, fill="black")
    for row, picture in enumerate(pictures):
        top = HEADER + row * TILE
        sheet.paste(picture.convert("RGB").resize((TILE, TILE), Image.Resampling.BICUBIC), (0, top))
        for col, attention in enumerate(maps.values(), start=1):
            sheet.paste(overlay(picture, attention[row]), (col * TILE, top))
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_path)
    entropy = {
        name: float(np.mean(-(m * np.log(np.clip(m, 1e-12, None))).sum(axis=(1, 2)))) for name, m in maps.items()
    }
    print(f"images (class, sample): {list(zip(rows['label'].to_list(), rows['sample_id'].to_list()))}")
    print(f"mean attention entropy (nats): {entropy}")
    return entropy


def caption(backbone: str, runs: list[str], pools: list[str], failed: list[str] = ()) -> str:
    """The report caption (reStructuredText) of one backbone's sheet."""
    missing = f"Not drawn: {', '.join(failed)}, which failed (see the findings page). " if failed else ""
    return missing + (
        f"The paper's Fig. 3: last-block attention of the CLS token to every patch (mean over heads) of backbone "
        f"``{backbone}`` on natural-domain test images, one of each of several classes: each row is one image, then "
        f"the pre-trained model's map, then the maps of the fine-tuned runs {', '.join(runs)} "
        f"(pools {', '.join(pools)}; Feat = mean of patch tokens). Both fine-tuned columns show the CLS token's "
        "attention (the paper does not say which query its Feat maps use; a mean-pool head reads every patch token, "
        "not the CLS). Each map is min-max scaled on its own: brighter = more attention.\n"
    )
