"""LoRA, BitFit and partial fine-tuning: each trains only what it says (the gradients are zero, the values
unchanged, everywhere else), LoRA's adapters merge exactly into an ordinary backbone, and a run's saved model
differs from the pre-trained one only where the method trains."""

import data_fixtures as fx
import pytest
import test_training as t
import torch
from safetensors.torch import load_file
from test_models_backbone import DEMO
from test_training import BACKBONE, inputs, run  # noqa: F401 (the module fixture)

from repdrift.data import build_dataset, write_dataset
from repdrift.errors import ConfigError
from repdrift.models import build_backbone, save_backbone_weights
from repdrift.training.parameter_efficient import freeze_for, lora_targets

LORA = dict(rank=2, alpha_ratio=2.0, dropout=0.0)


def tiny(name: str):
    torch.manual_seed(0)
    return build_backbone(DEMO[name] | {"name": name}, None)


def test_lora_targets_every_blocks_attention_and_mlp_of_each_library():
    vit, clip = tiny("vit_demo"), tiny("clip_demo")
    assert lora_targets(vit) == sorted(
        f"blocks.{i}.{m}" for i in range(vit.num_layers) for m in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")
    )
    # nn.MultiheadAttention is adapted as one module (in_proj and out_proj), the MLP's two matrices on their own.
    assert lora_targets(clip) == sorted(
        f"transformer.resblocks.{i}.{m}" for i in range(clip.num_layers) for m in ("attn", "mlp.c_fc", "mlp.c_proj")
    )


@pytest.mark.parametrize("name", ["vit_demo", "clip_demo"])
def test_lora_adapters_merge_into_an_ordinary_backbone_with_the_same_outputs(name):
    backbone = tiny(name).eval()
    keys = set(backbone.state_dict())
    adapters = freeze_for("lora", LORA, backbone)
    trained = [n for n, p in backbone.named_parameters() if p.requires_grad]
    assert trained and all("lora_" in n for n in trained)
    with torch.no_grad():  # B starts at zero: give the adapters a change to merge
        for n, p in backbone.named_parameters():
            if "lora_B" in n:
                p.normal_(std=0.2)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        unmerged = backbone.representations(x)
        # open_clip's attention maps read nn.MultiheadAttention's weights: only a merged backbone has them.
        unmerged_attention = backbone.last_attention(x) if backbone.library == "timm" else None
    adapters.merge()
    assert set(backbone.state_dict()) == keys  # the library's own keys again: no peft wrapper left
    assert not any("lora" in type(m).__module__ for m in backbone.modules())
    with torch.no_grad():
        merged = backbone.representations(x)
        attention = backbone.last_attention(x)
    if unmerged_attention is not None:
        assert torch.allclose(attention, unmerged_attention, atol=1e-5)
    for pool in merged:
        assert torch.allclose(merged[pool], unmerged[pool], atol=1e-5), (
            pool,
            (merged[pool] - unmerged[pool]).abs().max(),
        )
    assert not torch.allclose(merged["cls"], tiny(name).eval().representations(x)["cls"], atol=1e-3)  # it did move


def _gradients(backbone, method, options):
    freeze_for(method, options, backbone)
    backbone.train()
    backbone(torch.randn(4, 3, 32, 32)).pow(2).sum().backward()
    return {n: p.grad for n, p in backbone.model.named_parameters()}


@pytest.mark.parametrize("name", ["vit_demo", "clip_demo"])
def test_bitfit_trains_the_biases_only(name):
    grads = _gradients(tiny(name), "bitfit", {})
    assert any(n.endswith("bias") for n in grads)
    for n, grad in grads.items():
        assert (grad is not None) == n.endswith("bias"), n


@pytest.mark.parametrize("name", ["vit_demo", "clip_demo"])
def test_partial_trains_the_top_blocks_and_the_final_norm_only(name):
    backbone = tiny(name)
    top = backbone.block_prefix.format(backbone.num_layers - 1)
    grads = _gradients(backbone, "partial", {"blocks": 1})
    for n, grad in grads.items():
        trained = n.startswith(top) or n.startswith(backbone.final_norm_prefixes)
        if n.startswith("proj") or n == "proj":  # CLIP's output projection: frozen, and not on the head's path
            assert grad is None
            continue
        assert (grad is not None) == trained, n
        if trained:
            assert grad.abs().sum() > 0, n


def test_partial_with_more_blocks_than_the_backbone_names_the_key():
    with pytest.raises(ConfigError, match=r"preserving.partial.blocks: 9 blocks .* has 6"):
        freeze_for("partial", {"blocks": 9}, tiny("vit_demo"))


@pytest.mark.slow
@pytest.mark.parametrize("method", ["bitfit", "partial", "lora2"])  # lora2: a run method, as the rule passes it
def test_a_saved_run_differs_from_the_pretrained_backbone_only_where_its_method_trains(inputs, tmp_path, method):  # noqa: F811
    run(inputs, tmp_path, method, recipe=dict(epochs=1, batch_size=8, lr=1e-2), checkpoint=False)
    before, after = load_file(inputs[1]), load_file(tmp_path / "model.safetensors")
    assert set(after) == {f"backbone.{k}" for k in before} | {"head.weight", "head.bias"}  # merged, no adapter
    moved = {k for k in before if not torch.equal(before[k], after[f"backbone.{k}"])}
    if method == "bitfit":
        assert moved and all(k.endswith("bias") for k in moved)
    elif method == "partial":  # BACKBONE has 2 blocks: the top one and the final norm
        assert moved and all(k.startswith(("blocks.1.", "norm.")) for k in moved)
    else:  # LoRA changes the adapted matrices only, by a product of rank <= 2 each
        matrices = {f"blocks.{i}.{m}.weight" for i in range(2) for m in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")}
        assert moved == matrices
        for k in moved:
            assert torch.linalg.matrix_rank((after[f"backbone.{k}"] - before[k]).double(), rtol=1e-6) <= 2


@pytest.mark.slow
def test_an_open_clip_lora_run_resumes_bit_identically(tmp_path, monkeypatch, assert_same_run_outputs):
    # peft adapts open_clip's nn.MultiheadAttention by merging its LoRA into in_proj / out_proj for each forward
    # and unmerging after: the frozen base weights go through W + dW - dW, so the checkpoint must hold them too.
    clip = DEMO["clip_demo"] | {"name": "clip", "img_size": 16}
    labels = {"Training": list(range(7)) * 5, "Validation": list(range(7)), "Test": list(range(7)) * 2}
    dataset_dir = write_dataset(build_dataset("isic2018", fx.isic(tmp_path / "isic", labels)), tmp_path / "prepared")
    torch.manual_seed(0)
    weights = save_backbone_weights(build_backbone(clip, None), tmp_path / "clip.safetensors")
    monkeypatch.setattr(t, "BACKBONE", clip)
    t.run((dataset_dir, weights), tmp_path / "whole", "lora2", checkpoint=False)
    with monkeypatch.context() as patch:
        t.kill_at_evaluation(patch, call=2)
        with pytest.raises(t.Killed):
            t.run((dataset_dir, weights), tmp_path / "resumed", "lora2")
    t.run((dataset_dir, weights), tmp_path / "resumed", "lora2")
    assert_same_run_outputs(tmp_path / "whole", tmp_path / "resumed")
