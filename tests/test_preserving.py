"""The similarity-preserving penalties against their formulas, scipy's Procrustes and the numpy CKA."""

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.stats import ortho_group

from repdrift.errors import ConfigError
from repdrift.metrics import linear_cka
from repdrift.training.preserving import L2SP, batch_cka, phases, procrustes_penalty


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Linear(4, 3)
        self.head = torch.nn.Linear(3, 2)


def test_l2sp_is_zero_at_the_start_and_its_gradient_is_the_formula():
    torch.manual_seed(0)
    model = Tiny()
    penalty = L2SP(model, alpha=0.3, beta=0.0)
    assert penalty(model, None, None).item() == 0.0
    start = model.backbone.weight.detach().clone()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    penalty = L2SP(model, alpha=0.3, beta=0.02)
    penalty.start = {"weight": start}
    value = penalty(model, None, None)
    # Weight matrices only: the biases are in neither sum.
    drift = ((model.backbone.weight - start) ** 2).sum()
    assert value.item() == pytest.approx((0.15 * drift + 0.01 * (model.head.weight**2).sum()).item())
    value.backward()
    torch.testing.assert_close(model.backbone.weight.grad, 0.3 * (model.backbone.weight.detach() - start))
    torch.testing.assert_close(model.head.weight.grad, 0.02 * model.head.weight.detach())
    assert model.backbone.bias.grad is None and model.head.bias.grad is None


@pytest.mark.parametrize("library", ["timm", "open_clip"])
def test_l2sp_regularises_the_weight_matrices_of_a_vit(library):
    from repdrift.models import build_backbone
    from repdrift.training.preserving import l2sp_scope

    cfg = {
        "timm": dict(library="timm", arch="vit_base_patch16_224", paradigm="supervised", img_size=16,
                     model_kwargs=dict(patch_size=4, embed_dim=32, depth=2, num_heads=2)),
        "open_clip": dict(library="open_clip", arch="repdrift-l2sp-clip", paradigm="clip", img_size=16,
                          model_cfg=dict(embed_dim=32, vision_cfg=dict(image_size=16, layers=2, width=32,
                                         head_width=16, patch_size=4),
                                         text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=2,
                                                       layers=1))),
    }[library]  # fmt: skip
    backbone = build_backbone(cfg, None)
    scope = l2sp_scope(backbone)
    everything = dict(backbone.named_parameters())
    # The patch embedding, attention and MLP kernels: 1 + 4 per block (timm qkv, proj, fc1, fc2; open_clip
    # in_proj_weight, out_proj, c_fc, c_proj).
    assert len(scope) == 1 + 4 * 2
    assert all(p.ndim >= 2 for p in scope.values())
    left_out = set(everything) - set(scope)
    assert any(name.endswith("bias") for name in left_out) and any("norm" in name or "ln" in name for name in left_out)
    assert any(("pos" in name or "positional" in name) for name in left_out)


def test_procrustes_penalty_is_zero_for_any_rotation_and_matches_scipy():
    rng = np.random.default_rng(0)
    z0 = rng.standard_normal((32, 8))
    rotation = ortho_group.rvs(8, random_state=1)
    assert procrustes_penalty(torch.tensor(z0 @ rotation), torch.tensor(z0)).item() == pytest.approx(0, abs=1e-5)
    z = rng.standard_normal((32, 8))
    q, _ = orthogonal_procrustes(z, z0)  # argmin ||z q - z0||
    expected = np.sum((z @ q - z0) ** 2) / np.sum(z0**2)
    value = procrustes_penalty(torch.tensor(z), torch.tensor(z0)).item()
    assert value == pytest.approx(expected, rel=1e-5) and value > 0.1
    # Invariant to rotating the trained model's features.
    turned = procrustes_penalty(torch.tensor(z @ ortho_group.rvs(8, random_state=2)), torch.tensor(z0)).item()
    assert turned == pytest.approx(value, rel=1e-5)


def test_procrustes_gradient_with_q_held_fixed_is_the_gradient_of_the_minimum():
    # Envelope theorem: d/dZ min_Q f(Z, Q) = df/dZ at the minimising Q; checked by finite differences.
    rng = np.random.default_rng(3)
    z0 = torch.tensor(rng.standard_normal((16, 5)))
    z = torch.tensor(rng.standard_normal((16, 5)), requires_grad=True)
    procrustes_penalty(z, z0).backward()
    step = torch.tensor(rng.standard_normal((16, 5))) * 1e-2  # float32 inside: a step well above its rounding
    numeric = (procrustes_penalty(z.detach() + step, z0) - procrustes_penalty(z.detach() - step, z0)) / 2
    assert (z.grad * step).sum().item() == pytest.approx(numeric.item(), rel=1e-3)


def test_batch_cka_is_the_linear_cka():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((40, 6)), rng.standard_normal((40, 5))
    y[:, :3] += x[:, :3]
    assert batch_cka(torch.tensor(x), torch.tensor(y)).item() == pytest.approx(linear_cka(x, y), rel=1e-6)
    assert batch_cka(torch.tensor(x[:1]), torch.tensor(y[:1])).item() == 1.0  # one sample: nothing to compare


def test_phases():
    assert phases("full", 6, 1e-3, {}) == [("full", 6, 1e-3)]
    assert phases("linear", 6, 0.1, {}) == [("probe", 6, 0.1)]
    # LP-FT: the Linear probe's recipe, then Full's whole budget at lr_scale x lr.
    options = {"probe_epochs": 4, "probe_lr": 0.1, "lr_scale": 0.1}
    assert phases("lpft", 6, 1e-3, options) == [("probe", 4, 0.1), ("full", 6, pytest.approx(1e-4))]
    with pytest.raises(ConfigError, match="LP-FT's probe needs an epoch"):
        phases("lpft", 6, 1e-3, options | {"probe_epochs": 0})
