"""The demo backbones through the registry: shapes, attention, save/load round trips, config errors."""

import pytest
import torch
from PIL import Image
from safetensors import safe_open

from repdrift.errors import ConfigError, DataError
from repdrift.models import Backbone, backbone_spec, build_backbone, save_backbone_weights

TINY = {"patch_size": 4, "embed_dim": 96, "depth": 6, "num_heads": 3}
HALF = [0.5, 0.5, 0.5]
TINY_CLIP = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 32, "layers": 6, "width": 96, "head_width": 32, "patch_size": 4},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
DEMO = {
    "vit_demo": {
        "library": "timm",
        "arch": "vit_base_patch16_224",
        "paradigm": "supervised",
        "img_size": 32,
        "mean": HALF,
        "std": HALF,
        "interpolation": "bicubic",
        "model_kwargs": TINY,
    },
    "dino_demo": {
        "library": "timm",
        "arch": "vit_base_patch16_224",
        "paradigm": "self_supervised",
        "img_size": 32,
        "mean": HALF,
        "std": HALF,
        "interpolation": "bicubic",
        "model_kwargs": TINY,
    },
    "clip_demo": {
        "library": "open_clip",
        "arch": "repdrift-test-tiny-clip",
        "paradigm": "clip",
        "img_size": 32,
        "mean": HALF,
        "std": HALF,
        "interpolation": "bicubic",
        "model_cfg": TINY_CLIP,
    },
}
# The library's own key names, as in released checkpoints.
FIRST_KEYS = {"timm": "blocks.0.attn.qkv.weight", "open_clip": "visual.transformer.resblocks.0.attn.in_proj_weight"}


@pytest.fixture(scope="module", params=list(DEMO))
def demo(request, tmp_path_factory):
    """(name, cfg, random backbone, its weights file)."""
    cfg = DEMO[request.param] | {"name": request.param}
    torch.manual_seed(0)
    backbone = build_backbone(cfg, None).eval()
    path = save_backbone_weights(backbone, tmp_path_factory.mktemp(request.param) / "weights.safetensors")
    return request.param, cfg, backbone, path


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(1)
    return torch.randn(2, 3, 32, 32)


def test_attributes(demo):
    name, cfg, backbone, _ = demo
    assert isinstance(backbone, Backbone)
    assert (backbone.num_layers, backbone.embed_dim, backbone.num_heads) == (6, 96, 3)
    assert (backbone.img_size, backbone.patch_size, backbone.num_patches) == (32, 4, 64)
    assert backbone.mean == backbone.std == (0.5, 0.5, 0.5)
    assert (backbone.name, backbone.paradigm, backbone.library) == (name, cfg["paradigm"], cfg["library"])


def test_shapes(demo, images):
    _, _, backbone, _ = demo
    with torch.no_grad():
        layers = backbone.layer_tokens(images)
        pooled = backbone.pooled_layers(images)
        final = {pool: backbone(images, pool) for pool in ("cls", "mean")}
        attention = backbone.last_attention(images)
    assert len(layers) == 6 and all(t.shape == (2, 65, 96) for t in layers)
    assert set(pooled) == {"cls", "mean"} and all(v.shape == (6, 2, 96) for v in pooled.values())
    torch.testing.assert_close(pooled["cls"][3], layers[3][:, 0])
    torch.testing.assert_close(pooled["mean"][3], layers[3][:, 1:].mean(1))
    assert all(v.shape == (2, 96) for v in final.values())
    # the final representation is the last block after the final norm: not the raw last layer
    assert not torch.allclose(final["cls"], pooled["cls"][-1])
    assert attention.shape == (2, 3, 65, 65)
    torch.testing.assert_close(attention.sum(-1), torch.ones(2, 3, 65))
    assert (attention >= 0).all()


def test_representations_are_every_block_then_what_the_head_sees(demo, images):
    """One forward pass gives the pooled blocks and, last, the library's own final representation."""
    _, cfg, backbone, _ = demo
    with torch.no_grad():
        reps = backbone.representations(images)
        pooled = backbone.pooled_layers(images)
        library_final = (
            backbone.model.forward_features(images)[:, 0]
            if cfg["library"] == "timm"
            else backbone.model.ln_post(backbone.layer_tokens(images)[-1])[:, 0]
        )
    for pool in ("cls", "mean"):
        assert reps[pool].shape == (7, 2, 96)
        torch.testing.assert_close(reps[pool][:6], pooled[pool])
        torch.testing.assert_close(reps[pool][6], backbone(images, pool))
    torch.testing.assert_close(reps["cls"][6], library_final)


def test_attention_matches_the_blocks_computation(demo, images):
    """Attention maps recomputed / captured must be the ones the block uses, and must not change outputs."""
    _, _, backbone, _ = demo
    with torch.no_grad():
        before = backbone(images)
        attention = backbone.last_attention(images)
        after = backbone(images)
        block_input = backbone.layer_tokens(images)[-2]
    torch.testing.assert_close(before, after, rtol=0, atol=0)
    if backbone.library == "timm":
        block = backbone.model.blocks[-1]
        normed = block.norm1(block_input)
        value = block.attn.qkv(normed).unflatten(-1, (3, 3, 32))[:, :, 2].transpose(1, 2)
        mixed = block.attn.proj((attention @ value).transpose(1, 2).flatten(2))
    else:
        block = backbone.model.transformer.resblocks[-1]
        normed = block.ln_1(block_input)
        w, b = block.attn.in_proj_weight[192:], block.attn.in_proj_bias[192:]
        value = torch.nn.functional.linear(normed, w, b).unflatten(-1, (3, 32)).transpose(1, 2)
        mixed = block.attn.out_proj((attention @ value).transpose(1, 2).flatten(2))
    expected = block.attn(normed) if backbone.library == "timm" else block.attn(normed, normed, normed)[0]
    torch.testing.assert_close(mixed, expected, rtol=1e-4, atol=1e-5)


def test_round_trip_through_the_registry(demo, images):
    _, cfg, backbone, path = demo
    loaded = build_backbone(cfg, path).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), backbone(images), rtol=0, atol=0)
        for a, b in zip(loaded.layer_tokens(images), backbone.layer_tokens(images)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
    assert keys == set(backbone.state_dict()) and FIRST_KEYS[cfg["library"]] in keys
    assert not any(k.startswith("model.") for k in keys)


def test_random_init_differs_from_loaded(demo, images):
    _, cfg, backbone, _ = demo
    torch.manual_seed(123)
    scratch = build_backbone(cfg, None).eval()
    with torch.no_grad():
        assert not torch.allclose(scratch(images), backbone(images))


def test_nested_state_dict_round_trip(demo, images):
    """A classifier holding the backbone saves / loads with library names under its own prefix."""
    _, cfg, backbone, _ = demo
    torch.manual_seed(5)
    classifier = torch.nn.ModuleDict({"backbone": build_backbone(cfg, None), "head": torch.nn.Linear(96, 3)})
    state = classifier.state_dict()
    assert f"backbone.{FIRST_KEYS[cfg['library']]}" in state and "head.weight" in state
    other = torch.nn.ModuleDict({"backbone": build_backbone(cfg, None), "head": torch.nn.Linear(96, 3)})
    other.load_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(other["backbone"].eval()(images), classifier["backbone"].eval()(images))
    # a Backbone also loads its own state_dict directly
    backbone_copy = build_backbone(cfg, None)
    backbone_copy.load_state_dict(backbone.state_dict())


def test_transforms(demo):
    _, _, backbone, _ = demo
    image = Image.new("RGB", (48, 40), (255, 0, 0))
    for train in (True, False):
        x = backbone.transform(train)(image)
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32
        torch.testing.assert_close(x[0], torch.ones(32, 32))  # red: (1 - 0.5) / 0.5
        torch.testing.assert_close(x[1], -torch.ones(32, 32))
    grey = backbone.transform(False)(Image.new("L", (32, 32), 128))
    assert grey.shape == (3, 32, 32)


def test_library_defaults_for_preprocessing():
    cfg = {k: v for k, v in DEMO["vit_demo"].items() if k not in ("mean", "std", "interpolation", "img_size")}
    backbone = build_backbone(cfg | {"arch": "vit_base_patch14_dinov2", "model_kwargs": TINY}, None)
    assert backbone.mean == pytest.approx((0.485, 0.456, 0.406)) and backbone.interpolation == "bicubic"
    assert backbone.img_size == 518


def test_register_tokens_are_dropped(images):
    cfg = DEMO["dino_demo"] | {"arch": "vit_base_patch14_reg4_dinov2", "model_kwargs": TINY | {"init_values": 0.1}}
    backbone = build_backbone(cfg, None).eval()
    assert backbone.model.num_prefix_tokens == 5
    with torch.no_grad():
        assert all(t.shape == (2, 65, 96) for t in backbone.layer_tokens(images))
        final = backbone.final_tokens(images)
        assert final.shape == (2, 65, 96)
        torch.testing.assert_close(backbone(images, "mean"), final[:, 1:].mean(1))
        assert backbone.last_attention(images).shape == (2, 3, 65, 65)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"library": "keras"}, "unknown library 'keras'"),
        ({"paradigm": "mae"}, "unknown paradigm 'mae'"),
        ({"arch": "vit_nonexistent_model"}, "not a timm model"),
        ({"arch": "vit_base_patch16_224.nosuchtag"}, "nosuchtag"),
        ({"arch": "resnet18", "model_kwargs": {}, "img_size": None}, "not a ViT"),
        ({"model_kwargs": {"no_such_kwarg": 1}}, "model_kwargs"),
        ({"interpolation": "lanczos9"}, "interpolation"),
        ({"mean": [0.5, 0.5]}, "mean"),
        ({"library": None}, "library"),
    ],
)
def test_config_errors(change, message):
    with pytest.raises(ConfigError, match=message):
        build_backbone(DEMO["vit_demo"] | change, None)


def test_unknown_key_is_named_not_dropped():
    with pytest.raises(
        ConfigError,
        match=r"^backbone 'vit': unknown key\(s\) 'img_sise' \(valid keys: library, arch, "
        r"paradigm, img_size, .*, name, weights\)$",
    ):
        backbone_spec(DEMO["vit_demo"] | {"name": "vit", "img_sise": 48})
    # What the workflow adds to a config entry (rules/common.smk backbone_cfg) stays allowed.
    spec = backbone_spec(DEMO["vit_demo"] | {"name": "vit", "weights": "demo"})
    assert spec["name"] == "vit" and "weights" not in spec


def test_missing_weights_file_is_named(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(ConfigError, match=str(missing)):
        build_backbone(DEMO["vit_demo"], missing)


def test_open_clip_config_errors():
    with pytest.raises(ConfigError, match="built-in"):
        build_backbone(DEMO["clip_demo"] | {"arch": "ViT-B-16"}, None)
    with pytest.raises(ConfigError, match="not an open_clip model config"):
        build_backbone({"library": "open_clip", "arch": "ViT-Nope", "paradigm": "clip"}, None)


def test_weights_of_another_model_are_refused(tmp_path):
    torch.manual_seed(0)
    small = build_backbone(DEMO["vit_demo"] | {"model_kwargs": TINY | {"depth": 4}}, None)
    path = save_backbone_weights(small, tmp_path / "depth4.safetensors")
    with pytest.raises(DataError, match="depth4.safetensors"):
        build_backbone(DEMO["vit_demo"], path)  # 6 blocks expected, 4 in the file
    with pytest.raises(DataError, match="depth4.safetensors"):
        build_backbone(DEMO["clip_demo"], path)
