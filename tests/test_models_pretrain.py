"""Demo pre-training: one short run per paradigm writes weights the registry loads; runs are deterministic."""

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from repdrift.errors import ConfigError, DataError
from repdrift.models import build_backbone
from repdrift.models.pretrain import PRETRAIN_DEFAULTS, pretrain

# Smaller than the demo's backbones (2 blocks) to keep the test quick; same code paths.
SMALL = {"patch_size": 4, "embed_dim": 48, "depth": 2, "num_heads": 3}
HALF = [0.5, 0.5, 0.5]
CFGS = {
    "supervised": {
        "library": "timm",
        "arch": "vit_base_patch16_224",
        "paradigm": "supervised",
        "img_size": 32,
        "mean": HALF,
        "std": HALF,
        "model_kwargs": SMALL,
    },
    "self_supervised": {
        "library": "timm",
        "arch": "vit_base_patch16_224",
        "paradigm": "self_supervised",
        "img_size": 32,
        "mean": HALF,
        "std": HALF,
        "model_kwargs": SMALL,
    },
    "clip": {
        "library": "open_clip",
        "arch": "repdrift-test-pretrain-clip",
        "paradigm": "clip",
        "img_size": 32,
        "model_cfg": {
            "embed_dim": 32,
            "vision_cfg": {"image_size": 32, "layers": 2, "width": 48, "head_width": 16, "patch_size": 4},
            "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
        },
    },
}
CLASSES = ["red_square", "green disc", "blue stripes"]


@pytest.fixture(scope="module")
def data():
    """12 coloured 32 px images in 3 classes (PIL, as the data module delivers them)."""
    rng = np.random.default_rng(0)
    images, labels = [], []
    for label in range(3):
        for _ in range(4):
            pixels = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8)
            pixels[..., label] += 180
            images.append(Image.fromarray(pixels))
            labels.append(label)
    return images, labels


@pytest.mark.parametrize("paradigm", list(CFGS))
def test_pretrain_writes_loadable_weights(paradigm, data, tmp_path):
    images, labels = data
    out = tmp_path / f"{paradigm}.safetensors"
    history = pretrain(
        paradigm, CFGS[paradigm], images, labels, CLASSES, out, epochs=1, batch_size=6, seed=0, progress=False
    )
    assert history["epoch"] == [1] and np.isfinite(history["loss"]).all() and len(history["seconds"]) == 1
    backbone = build_backbone(CFGS[paradigm], out).eval()
    torch.manual_seed(99)
    scratch = build_backbone(CFGS[paradigm], None).eval()
    x = torch.stack([backbone.transform(False)(image) for image in images[:2]])
    with torch.no_grad():
        assert backbone(x).shape == (2, 48)
        assert not torch.allclose(backbone(x), scratch(x))
    with safe_open(str(out), framework="pt") as f:
        assert f.metadata()["paradigm"] == paradigm
        keys = set(f.keys())
    if paradigm == "clip":  # the whole CLIP, as a released open_clip checkpoint
        assert {"logit_scale", "text_projection", "visual.class_embedding"} <= keys
    else:  # the timm backbone alone (no head, no DINO projection)
        assert "cls_token" in keys and not any(k.startswith(("head", "model.")) for k in keys)


def test_pretrain_is_deterministic(data, tmp_path):
    images, labels = data
    weights = []
    for run in range(2):
        out = tmp_path / f"run{run}.safetensors"
        pretrain(
            "self_supervised",
            CFGS["self_supervised"],
            images,
            None,
            None,
            out,
            epochs=1,
            batch_size=6,
            seed=3,
            progress=False,
        )
        weights.append(load_file(out))  # (the file's header order is not fixed; its tensors must be)
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_pretrain_accepts_a_dataset(data, tmp_path):
    images, labels = data

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            return images[i], labels[i]

    history = pretrain(
        "supervised",
        CFGS["supervised"],
        Pairs(),
        None,
        None,
        tmp_path / "w.safetensors",
        epochs=1,
        batch_size=12,
        progress=False,
    )
    assert len(history["loss"]) == 1


def test_pretrain_errors(data, tmp_path):
    images, labels = data
    out = tmp_path / "w.safetensors"
    with pytest.raises(ConfigError, match="paradigm"):
        pretrain("clip", CFGS["supervised"], images, labels, CLASSES, out)
    with pytest.raises(DataError, match="labels"):
        pretrain("supervised", CFGS["supervised"], images, None, CLASSES, out)
    with pytest.raises(ConfigError, match="local_crop"):
        pretrain("self_supervised", CFGS["self_supervised"], images, None, None, out, options={"local_crop": 1})
    assert not out.exists()


def test_defaults_cover_every_paradigm():
    assert set(PRETRAIN_DEFAULTS) == {"supervised", "clip", "self_supervised"}
