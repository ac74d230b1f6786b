"""Attention maps (paper Fig. 3): last-block CLS attention of a pre-trained and a fine-tuned model, overlaid on
natural-domain images. One PNG per backbone: a row per image, columns image | pre-trained | fine-tuned.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import torch
from PIL import Image

from repdrift.data import read_dataset
from repdrift.data.images import load_image
from repdrift.models import build_backbone
from repdrift.training import load_classifier

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
    return (np.concatenate([np.clip(2 * v, 0, 1), np.clip(2 * v - 1, 0, 1), np.zeros_like(v)], axis=-1) * 255)


def overlay(image: Image.Image, attention: np.ndarray, alpha: float = 0.55) -> Image.Image:
    base = np.asarray(image.convert("RGB").resize((TILE, TILE), Image.Resampling.BICUBIC), dtype=np.float64)
    spread = attention.max() - attention.min()  # min-max scaled: near-uniform maps still show their contrast
    scaled = (attention - attention.min()) / spread if spread > 0 else np.zeros_like(attention)
    heat = Image.fromarray(_heat_colours(scaled).astype(np.uint8)).resize((TILE, TILE), Image.Resampling.NEAREST)
    blended = (1 - alpha) * base + alpha * np.asarray(heat, dtype=np.float64)
    return Image.fromarray(blended.round().astype(np.uint8))


def attention_figure(backbone_cfg: dict, weights, model_path, dataset_dir, n_images: int, out_path) -> dict:
    """Write the PNG and return the mean entropy (nats) of the attention maps of each model."""
    dataset = read_dataset(dataset_dir)
    rows = dataset.manifest.filter(pl.col("split") == "test").sort("sample_id").head(n_images)
    pretrained = build_backbone(backbone_cfg, weights).eval()
    finetuned = load_classifier(backbone_cfg, model_path).backbone.eval()
    pictures = [load_image(path) for path in rows["path"]]
    batch = torch.stack([pretrained.transform(False)(p) for p in pictures])
    maps = {"pre-trained": cls_attention(pretrained, batch), "fine-tuned": cls_attention(finetuned, batch)}

    sheet = Image.new("RGB", (3 * TILE, len(pictures) * TILE), "white")
    for row, picture in enumerate(pictures):
        sheet.paste(picture.convert("RGB").resize((TILE, TILE), Image.Resampling.BICUBIC), (0, row * TILE))
        for col, attention in enumerate(maps.values(), start=1):
            sheet.paste(overlay(picture, attention[row]), (col * TILE, row * TILE))
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_path)
    entropy = {name: float(np.mean(-(m * np.log(np.clip(m, 1e-12, None))).sum(axis=(1, 2)))) for name, m in maps.items()}
    print(f"mean attention entropy (nats): {entropy}")
    return entropy
