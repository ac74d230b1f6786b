"""The paper's real architectures, with random weights written in each library's released file format and
loaded back through the registry's route for real checkpoints (offline: nothing is downloaded)."""

import open_clip
import pytest
import timm
import torch
from safetensors.torch import save_file

from repdrift.models import build_backbone, save_backbone_weights

pytestmark = pytest.mark.slow  # builds ViT-B models


def check_vit_b(backbone, img_size, patch_size):
    tokens = 1 + (img_size // patch_size) ** 2
    x = torch.randn(1, 3, img_size, img_size)
    assert (backbone.num_layers, backbone.embed_dim, backbone.num_heads) == (12, 768, 12)
    assert (backbone.img_size, backbone.patch_size) == (img_size, patch_size)
    with torch.no_grad():
        layers = backbone.layer_tokens(x)
        assert len(layers) == 12 and all(t.shape == (1, tokens, 768) for t in layers)
        assert backbone.pooled_layers(x)["mean"].shape == (12, 1, 768)
        assert backbone(x, "cls").shape == backbone(x, "mean").shape == (1, 768)
        attention = backbone.last_attention(x)
    assert attention.shape == (1, 12, tokens, tokens)
    torch.testing.assert_close(attention.sum(-1), torch.ones(1, 12, tokens))


def test_timm_supervised_vit_b16(tmp_path):
    # As timm's release of vit_base_patch16_224.augreg_in1k: model.safetensors, 224 px, a 1000-class head.
    torch.manual_seed(0)
    source = timm.create_model("vit_base_patch16_224", pretrained=False)
    save_file(source.state_dict(), str(tmp_path / "model.safetensors"))
    cfg = {"library": "timm", "arch": "vit_base_patch16_224.augreg_in1k", "paradigm": "supervised", "img_size": 64}
    backbone = build_backbone(cfg, tmp_path / "model.safetensors").eval()
    check_vit_b(backbone, 64, 16)
    torch.testing.assert_close(backbone.model.blocks[7].mlp.fc2.weight, source.blocks[7].mlp.fc2.weight)
    assert backbone.model.pos_embed.shape == (1, 17, 768)  # resampled from 197 by timm's checkpoint filter
    assert backbone.mean == (0.5, 0.5, 0.5)


def test_timm_dinov2_b14(tmp_path):
    # As timm's release of vit_base_patch14_dinov2.lvd142m: 518 px, no head, ImageNet mean / std.
    torch.manual_seed(0)
    source = timm.create_model("vit_base_patch14_dinov2", pretrained=False, num_classes=0)
    save_file(source.state_dict(), str(tmp_path / "model.safetensors"))
    cfg = {"library": "timm", "arch": "vit_base_patch14_dinov2.lvd142m", "paradigm": "self_supervised", "img_size": 56}
    backbone = build_backbone(cfg, tmp_path / "model.safetensors").eval()
    check_vit_b(backbone, 56, 14)
    torch.testing.assert_close(backbone.model.blocks[3].ls1.gamma, source.blocks[3].ls1.gamma)
    assert backbone.mean == pytest.approx((0.485, 0.456, 0.406))


def test_open_clip_vit_b16(tmp_path):
    # As open_clip's release of ViT-B-16 laion2b_s34b_b88k: open_clip_pytorch_model.bin, the whole CLIP model.
    torch.manual_seed(0)
    source = open_clip.create_model("ViT-B-16")
    torch.save(source.state_dict(), tmp_path / "open_clip_pytorch_model.bin")
    cfg = {"library": "open_clip", "arch": "ViT-B-16", "paradigm": "clip", "img_size": 64}
    backbone = build_backbone(cfg, tmp_path / "open_clip_pytorch_model.bin").eval()
    check_vit_b(backbone, 64, 16)
    block = backbone.model.transformer.resblocks[5]
    torch.testing.assert_close(block.attn.in_proj_weight, source.visual.transformer.resblocks[5].attn.in_proj_weight)
    assert backbone.mean == pytest.approx(open_clip.OPENAI_DATASET_MEAN)
    # A fine-tuned image tower saved on its own (visual.* keys only) loads back through the same registry.
    path = save_backbone_weights(backbone, tmp_path / "tower.safetensors")
    again = build_backbone(cfg, path).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(again(x), backbone(x), rtol=0, atol=0)
