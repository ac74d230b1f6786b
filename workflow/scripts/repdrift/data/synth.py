"""Procedural image painters for the demo data (numpy only; every random draw comes from the rng passed in).

Each painter returns a float image in [0, 1], painted at twice the target size and box-downsampled so edges are
anti-aliased. Class signals are deliberately noisy (jittered colours, sizes and strengths, shared nuisances such
as hairs, crop position and lighting) so a tiny ViT learns them well above chance but not perfectly.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from repdrift.data.medfm import CHEST_LABELS  # the adapter's order: the painted motifs match its labels

Rng = np.random.Generator


def grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) pixel-centre coordinates in [0, 1], each (n, n)."""
    c = (np.arange(n) + 0.5) / n
    return np.meshgrid(c, c, indexing="ij")


def downsample(img: np.ndarray, factor: int = 2) -> np.ndarray:
    h, w = img.shape[:2]
    return img.reshape(h // factor, factor, w // factor, factor, *img.shape[2:]).mean(axis=(1, 3))


def smooth_noise(rng: Rng, n: int, cells: int) -> np.ndarray:
    """Band-limited noise in about [-1, 1]: a (cells x cells) random grid resized bicubically to n x n."""
    coarse = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse, mode="F").resize((n, n), Image.BICUBIC))


def ellipse(y, x, cy, cx, ry, rx, angle=0.0, edge=0.02) -> np.ndarray:
    """Soft mask (1 inside) of a rotated ellipse; edge = blur width in image units."""
    dy, dx = y - cy, x - cx
    c, s = np.cos(angle), np.sin(angle)
    u, v = (c * dx + s * dy) / rx, (-s * dx + c * dy) / ry
    r = np.sqrt(u * u + v * v)
    return np.clip((1 - r) * min(rx, ry) / edge + 0.5, 0, 1)


def blend(img: np.ndarray, mask: np.ndarray, colour) -> np.ndarray:
    m = mask[..., None] if img.ndim == 3 else mask
    return img * (1 - m) + np.asarray(colour, dtype=np.float32) * m


# ---------------------------------------------------------------- natural photos (ImageNet stand-in)


def natural_crop(rng: Rng, source: np.ndarray, size: int, grey_source: bool) -> np.ndarray:
    """A random-resized crop of a photo with flip and colour jitter (the augmentations of SimCLR/DINO)."""
    h, w = source.shape[:2]
    side = rng.uniform(0.2, 0.6) * min(h, w)
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    ch, cw = int(min(h, side * np.sqrt(aspect))), int(min(w, side / np.sqrt(aspect)))
    y0, x0 = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    crop = Image.fromarray(source[y0 : y0 + ch, x0 : x0 + cw]).resize((size, size), Image.BILINEAR)
    img = np.asarray(crop, dtype=np.float32) / 255
    if rng.random() < 0.5:
        img = img[:, ::-1]
    if grey_source:  # tint greyscale photos so colour alone does not separate them from colour ones
        img = img * rng.uniform(0.75, 1.15, 3)
    grey = img.mean(axis=2, keepdims=True)
    img = grey + (img - grey) * (0.0 if rng.random() < 0.15 else rng.uniform(0.5, 1.5))
    img = (img - img.mean()) * rng.uniform(0.6, 1.4) + img.mean() * rng.uniform(0.7, 1.3)
    return np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1)


# ---------------------------------------------------------------- ISIC 2018 skin lesions

# class: (base RGB, radius range, border irregularity range)
LESIONS = {
    "MEL": ((0.32, 0.20, 0.15), (0.26, 0.38), (0.10, 0.22)),
    "NV": ((0.48, 0.31, 0.22), (0.16, 0.30), (0.02, 0.08)),
    "BCC": ((0.80, 0.55, 0.55), (0.18, 0.30), (0.04, 0.12)),
    "AKIEC": ((0.75, 0.42, 0.36), (0.18, 0.34), (0.06, 0.16)),
    "BKL": ((0.60, 0.45, 0.30), (0.18, 0.32), (0.05, 0.14)),
    "DF": ((0.52, 0.36, 0.27), (0.14, 0.24), (0.02, 0.07)),
    "VASC": ((0.58, 0.16, 0.26), (0.12, 0.24), (0.04, 0.12)),
}


def skin_lesion(rng: Rng, cls: str, size: int) -> np.ndarray:
    n = 2 * size
    y, x = grid(n)
    skin = np.array([0.86, 0.66, 0.55]) + rng.normal(0, 0.04, 3)
    img = np.ones((n, n, 3), np.float32) * skin * (1 + 0.06 * smooth_noise(rng, n, 4)[..., None])
    colour, (r0, r1), (i0, i1) = LESIONS[cls]
    colour = np.clip(np.asarray(colour) + rng.normal(0, 0.06, 3), 0, 1)
    cy, cx = 0.5 + rng.normal(0, 0.06, 2)
    radius, irregular = rng.uniform(r0, r1), rng.uniform(i0, i1)
    theta, dist = np.arctan2(y - cy, x - cx), np.hypot(y - cy, x - cx)
    wobble = sum(rng.uniform(0, irregular) * np.sin(k * theta + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5, 7))
    asymmetry = rng.uniform(0.1, 0.35) if cls == "MEL" else rng.uniform(0.0, 0.15)
    border = radius * (1 + wobble) * (1 - asymmetry * np.maximum(np.cos(theta - rng.uniform(0, 2 * np.pi)), 0))
    mask = np.clip((border - dist) / 0.03, 0, 1)
    texture = 1 + 0.15 * smooth_noise(rng, n, 6)[..., None]
    img = blend(img, mask, np.clip(colour * texture, 0, 1))

    def inside(r):
        return mask * (dist < r)

    if cls == "MEL":  # blue-grey veil and darker multi-tone blotches
        img = blend(img, inside(radius) * (smooth_noise(rng, n, 5) > 0.3) * 0.7, (0.38, 0.40, 0.48))
        img = blend(img, inside(radius) * (smooth_noise(rng, n, 7) > 0.4) * 0.6, (0.12, 0.08, 0.07))
    elif cls == "BCC":  # pearly centre with red telangiectasia
        img = blend(img, inside(radius * 0.6) * 0.4, (0.95, 0.85, 0.85))
        for _ in range(rng.integers(2, 5)):
            a = rng.uniform(0, np.pi)
            line = np.abs((y - cy) * np.cos(a) - (x - cx) * np.sin(a)) < 0.012
            img = blend(img, line * inside(radius) * 0.8, (0.70, 0.10, 0.12))
    elif cls == "AKIEC":  # rough scale: white flakes
        img = blend(img, inside(radius) * (rng.random((n, n)) < 0.12) * 0.8, (0.95, 0.92, 0.88))
    elif cls == "BKL":  # waxy speckled surface
        img = blend(img, inside(radius) * (rng.random((n, n)) < 0.06), (0.25, 0.18, 0.12))
    elif cls == "DF":  # pale central scar inside a brown ring
        img = blend(
            img, ellipse(y, x, cy, cx, radius * 0.45, radius * 0.55, rng.uniform(0, 3)) * 0.8, (0.92, 0.88, 0.82)
        )
    elif cls == "VASC":  # red-purple lobules
        for _ in range(rng.integers(3, 6)):
            oy, ox = rng.normal(0, radius * 0.5, 2)
            img = blend(
                img,
                ellipse(y, x, cy + oy, cx + ox, radius * 0.35, radius * 0.35) * 0.9,
                np.clip(colour * rng.uniform(0.6, 1.1), 0, 1),
            )
    for _ in range(rng.integers(0, 3)):  # hairs: a nuisance shared by all classes
        a, off = rng.uniform(0, np.pi), rng.uniform(-0.4, 0.4)
        line = np.abs((y - 0.5) * np.cos(a) - (x - 0.5) * np.sin(a) - off) < 0.006
        img = blend(img, line * 1.0, (0.15, 0.10, 0.08))
    img = img * rng.uniform(0.85, 1.1) + rng.normal(0, 0.02, img.shape)
    return np.clip(downsample(img), 0, 1)


# ---------------------------------------------------------------- MedFM colon histology


def colon_patch(rng: Rng, tissue: np.ndarray, size: int, positive: bool) -> np.ndarray:
    """A random crop of an IHC colon image; positives get clusters of dark atypical nuclei and more brown stain.

    Strength varies, and negatives sometimes carry a few nuclei too, so the classes overlap.
    """
    h, w = tissue.shape[:2]
    side = int(rng.uniform(0.15, 0.3) * min(h, w))
    y0, x0 = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    crop = Image.fromarray(tissue[y0 : y0 + side, x0 : x0 + side]).resize((2 * size, 2 * size), Image.BILINEAR)
    img = np.rot90(np.asarray(crop, dtype=np.float32) / 255, rng.integers(0, 4))
    n = 2 * size
    y, x = grid(n)
    strength = rng.uniform(0.35, 1.0) if positive else rng.uniform(0.0, 0.3)
    if positive:  # shift towards brown (DAB) staining
        img = img * (1 - 0.35 * strength) + np.array([0.45, 0.28, 0.15]) * 0.35 * strength
    n_nuclei = rng.poisson(16 * strength)
    cy, cx = rng.uniform(0.25, 0.75, 2)
    for _ in range(n_nuclei):
        oy, ox = rng.normal(0, 0.18, 2)
        r = rng.uniform(0.03, 0.06)
        img = blend(
            img,
            ellipse(y, x, cy + oy, cx + ox, r, r * rng.uniform(0.6, 1.0), rng.uniform(0, 3)) * 0.85,
            (0.22, 0.14, 0.28),
        )
    img = img * rng.uniform(0.9, 1.1, 3) + rng.normal(0, 0.015, img.shape)
    return np.clip(downsample(img), 0, 1)


# ---------------------------------------------------------------- MedFM chest X-rays


def chest_xray(rng: Rng, labels: np.ndarray, size: int) -> np.ndarray:
    """A greyscale frontal chest film; each positive label adds its own motif (of random strength)."""
    on = dict(zip(CHEST_LABELS, labels.astype(bool), strict=True))
    n = 2 * size
    y, x = grid(n)
    y = y + rng.normal(0, 0.02)
    x = x + rng.normal(0, 0.02)
    s = rng.uniform(0.93, 1.07)

    def g():  # motif strength
        return rng.uniform(0.5, 1.0)

    img = 0.08 + 0.5 * ellipse(y, x, 0.55, 0.5, 0.55 * s, 0.46 * s, edge=0.05)  # body
    lungs = []
    grow = 1.1 if on["emphysema"] else 1.0
    for side, cx in enumerate((0.32, 0.68)):
        bottom_lift = 0.1 if on["elevated_diaphragm"] and side == 0 else 0.0
        lung = ellipse(y, x, 0.47 - bottom_lift / 2, cx, (0.29 - bottom_lift / 2) * s * grow, 0.14 * s * grow)
        lungs.append(lung)
        img = img - (0.32 + (0.08 if on["emphysema"] else 0.0)) * lung
    lung_any = np.maximum(*lungs)
    img += 0.08 * lung_any * (np.sin(y * 2 * np.pi * 9 + 2 * np.sin(x * 6)) > 0.6)  # ribs
    img += 0.18 * ellipse(y, x, 0.5, 0.5, 0.45, 0.035)  # spine / mediastinum
    heart = 1.35 if on["cardiomegaly"] else 1.0
    img = np.maximum(img, 0.6 * ellipse(y, x, 0.66, 0.55, 0.12 * heart * s, 0.14 * heart * s, 0.3))
    side = rng.integers(0, 2)
    lx = (0.32, 0.68)[side]

    def spot(cy, cx, r, level, edge=0.01):
        nonlocal img
        img = np.maximum(img, level * ellipse(y, x, cy, cx, r, r, edge=edge))

    if on["pleural_effusion"]:
        img += g() * 0.35 * lungs[side] * np.clip((y - 0.62 + 0.05 * np.abs(x - lx) * 5) / 0.04, 0, 1)
    if on["nodule"]:
        spot(rng.uniform(0.3, 0.6), lx + rng.uniform(-0.06, 0.06), 0.03, 0.5 + 0.3 * g())
    if on["pneumonia"]:
        img += g() * 0.3 * lungs[side] * ellipse(y, x, 0.55, lx, 0.12, 0.1, edge=0.05) * (smooth_noise(rng, n, 8) > 0)
    if on["hilar_enlargement"]:
        for cx in (0.42, 0.58):
            spot(0.45, cx, 0.05 * g() + 0.02, 0.6)
    if on["fracture_old"]:
        spot(rng.uniform(0.3, 0.6), lx + (0.13 if side else -0.13), 0.025, 0.75)
    if on["fibrosis"]:
        img += g() * 0.2 * lung_any * (y > 0.5) * (np.abs(smooth_noise(rng, n, 16)) < 0.15)
    if on["aortic_calcification"]:
        ring = ellipse(y, x, 0.28, 0.56, 0.05, 0.05) - ellipse(y, x, 0.28, 0.56, 0.03, 0.03)
        img = np.maximum(img, 0.95 * g() * ring)
    if on["tortuous_aorta"]:
        img = np.maximum(img, 0.6 * ellipse(y, x, 0.32, 0.6, 0.07, 0.06 + 0.03 * g()))
    if on["thickened_pleura"]:
        img += g() * 0.25 * (lung_any - np.maximum(*[ellipse(y, x, 0.49, c, 0.26, 0.11) for c in (0.32, 0.68)]))
    if on["TB"]:
        spot(0.27, lx, 0.06, 0.55 + 0.2 * g(), edge=0.03)
        img -= 0.3 * ellipse(y, x, 0.27, lx, 0.025, 0.025)
    if on["pneumothorax"]:
        edge_x = lx + (0.06 if side else -0.06)
        region = lungs[side] * ((x - edge_x) * (1 if side else -1) > 0)
        img = img * (1 - region) + (0.03 + 0.05 * (1 - g())) * region
    if on["atelectasis"]:
        img += g() * 0.3 * lungs[side] * (np.abs(y - rng.uniform(0.45, 0.6) + 0.2 * (x - lx)) < 0.02)
    if on["calcification"]:
        for _ in range(rng.integers(3, 7)):
            spot(rng.uniform(0.25, 0.65), lx + rng.uniform(-0.08, 0.08), 0.012, 0.95)
    if on["pulmonary_edema"]:
        img += g() * 0.25 * lung_any * np.exp(-((y - 0.47) ** 2 + (np.abs(x - 0.5) - 0.12) ** 2) / 0.01)
    if on["increased_lung_markings"]:
        a = np.arctan2(y - 0.47, np.abs(x - 0.5))
        img += g() * 0.15 * lung_any * (np.sin(a * 40) > 0.7)
    if on["consolidation"]:
        upper = rng.random() < 0.5
        img += g() * 0.35 * lungs[side] * ((y < 0.45) if upper else (y > 0.5))
    img = img * rng.uniform(0.85, 1.15) + rng.uniform(-0.05, 0.05)
    img = img + 0.05 * smooth_noise(rng, n, 5) + rng.normal(0, 0.025, img.shape)
    return np.clip(downsample(img), 0, 1)
