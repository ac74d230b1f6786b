"""Backbone weights from the Hugging Face Hub: `hf-hub:` names, the fetch into the cache and the local copy the
GPU rules read, and that copy loading through the registry. Nothing reaches the network: the Hub download is
faked in-process, and the one Snakemake run finds its file in a pre-filled cache by commit hash (no request)."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx2
import huggingface_hub
import pytest
import timm
import torch
import yaml
from huggingface_hub import errors
from safetensors.torch import save_file
from timm.models._hub import save_for_hf

from repdrift.errors import ConfigError, DataError
from repdrift.models import build_backbone
from repdrift.models.build import backbone_spec
from repdrift.models.open_clip_backbone import create_clip
from repdrift.models.weights import HubFile, fetch, hub_file, hub_files, weights_path

REPO = Path(__file__).resolve().parents[1]
COMMIT = "0123456789abcdef0123456789abcdef01234567"
TINY = {"patch_size": 4, "embed_dim": 32, "depth": 2, "num_heads": 2}
TIMM_CFG = {
    "library": "timm",
    "arch": "vit_base_patch16_224.augreg_in1k",
    "paradigm": "supervised",
    "img_size": 16,
    "model_kwargs": TINY,
}
CLIP_CFG = {
    "library": "open_clip",
    "arch": "repdrift-test-hub-clip",
    "paradigm": "clip",
    "img_size": 16,
    "model_cfg": {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 16, "layers": 2, "width": 32, "head_width": 16, "patch_size": 4},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    },
}


@pytest.mark.parametrize(
    "weights, library, expected",
    [
        (
            "hf-hub:timm/vit_base_patch16_224.augreg_in1k",
            "timm",
            HubFile("timm/vit_base_patch16_224.augreg_in1k", "model.safetensors"),
        ),
        (
            "hf-hub:laion/CLIP-ViT-B-16-laion2B-s34B-b88K",
            "open_clip",
            HubFile("laion/CLIP-ViT-B-16-laion2B-s34B-b88K", "open_clip_model.safetensors"),
        ),
        (
            "hf-hub:laion/CLIP-ViT-B-16-laion2B-s34B-b88K/open_clip_pytorch_model.bin@" + COMMIT,
            "open_clip",
            HubFile("laion/CLIP-ViT-B-16-laion2B-s34B-b88K", "open_clip_pytorch_model.bin", COMMIT),
        ),
        (
            "hf-hub:org/repo/sub/dir/weights.pth@refs/pr/3",
            "timm",
            HubFile("org/repo", "sub/dir/weights.pth", "refs/pr/3"),
        ),
        ("demo", "timm", None),
        ("/data/weights.safetensors", "timm", None),
    ],
)
def test_hub_names(weights, library, expected):
    assert hub_file(weights, library) == expected


@pytest.mark.parametrize(
    "weights, library, message",
    [
        ("hf-hub:just-a-name", "timm", "is not hf-hub:OWNER/NAME"),
        ("hf-hub:org/repo/config.json", "timm", "'config.json' is not a checkpoint file"),
        ("hf-hub:org/repo", "keras", "no default checkpoint file for library 'keras'"),
    ],
)
def test_bad_hub_names_name_the_key(weights, library, message):
    with pytest.raises(ConfigError, match=f"^backbones.vit.weights: .*{message}"):
        hub_file(weights, library, "backbones.vit.weights")


def test_local_paths():
    backbones = {
        "demo": {"library": "timm", "weights": "demo"},
        "hub": {"library": "open_clip", "weights": "hf-hub:laion/CLIP-ViT-B-16-laion2B-s34B-b88K"},
        "file": {"library": "timm", "weights": "/ckpt/vit.safetensors"},
    }
    assert {name: weights_path(name, cfg) for name, cfg in backbones.items()} == {
        "demo": "results/pretrained/demo/weights.safetensors",
        "hub": "results/pretrained/hub/hub/open_clip_model.safetensors",
        "file": "/ckpt/vit.safetensors",
    }
    assert list(hub_files(backbones, ["demo", "hub", "file"])) == ["hub"]


def write_timm_release(folder: Path) -> torch.nn.Module:
    """A tiny ViT as timm publishes a checkpoint on the Hub (timm's own save_for_hf: model.safetensors)."""
    torch.manual_seed(0)
    model = timm.create_model("vit_base_patch16_224", pretrained=False, img_size=16, num_classes=10, **TINY)
    save_for_hf(model, str(folder), safe_serialization=True)
    return model


def write_open_clip_release(folder: Path) -> torch.nn.Module:
    """A tiny CLIP as open_clip publishes one (its save_for_hf writes the whole model's state_dict as
    open_clip_model.safetensors; the tokenizer files it adds are not needed here)."""
    torch.manual_seed(0)
    model = create_clip(backbone_spec(CLIP_CFG), None)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), str(folder / "open_clip_model.safetensors"))
    return model


def snapshot(cache: Path, repo_id: str) -> Path:
    """The folder huggingface_hub keeps a repository's files in, for revision COMMIT."""
    return cache / f"models--{repo_id.replace('/', '--')}" / "snapshots" / COMMIT


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """hf_hub_download replaced by a lookup in a cache folder the test fills; records the calls."""
    cache, calls = tmp_path / "cache", []

    def download(repo_id, filename, *, revision=None, **kwargs):
        calls.append((repo_id, filename, revision))
        path = snapshot(cache, repo_id) / filename
        if not path.is_file():
            raise errors.LocalEntryNotFoundError("Cannot find the requested files in the disk cache")
        return str(path)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    return cache, calls


@pytest.mark.parametrize("library", ["timm", "open_clip"])
def test_fetched_copy_loads_through_the_registry(fake_hub, tmp_path, library):
    cache, calls = fake_hub
    cfg, repo = (TIMM_CFG, "timm/vit_tiny") if library == "timm" else (CLIP_CFG, "laion/CLIP-tiny")
    write = write_timm_release if library == "timm" else write_open_clip_release
    source = write(snapshot(cache, repo))
    hub = hub_file(f"hf-hub:{repo}", library)
    out = tmp_path / "results/pretrained/b/hub" / hub.local_name
    record = fetch(hub, out, out.with_name(out.name + ".json"))

    assert calls == [(repo, hub.filename, None)]
    cached = snapshot(cache, repo) / hub.filename
    assert out.read_bytes() == cached.read_bytes() and not out.is_symlink()
    assert record["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest() and record["commit"] == COMMIT
    assert json.loads(out.with_name(out.name + ".json").read_text()) == record
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name, out.name + ".json"]  # no temporary left

    backbone = build_backbone({**cfg, "name": "b"}, out)
    visual = source if library == "timm" else source.visual
    loaded = backbone.model
    for name, value in (visual.state_dict()).items():
        if not name.startswith("head."):  # timm's 10-class head is dropped: the backbone is headless
            torch.testing.assert_close(loaded.state_dict()[name], value, rtol=0, atol=0, msg=name)


def test_not_in_cache_and_offline_is_one_clear_error(fake_hub, tmp_path):
    out = tmp_path / "hub/model.safetensors"
    with pytest.raises(
        DataError,
        match=r"^backbones.vit.weights: hf-hub:timm/x/model.safetensors is not in the "
        r"Hugging Face cache .* run `snakemake fetch_weights`",
    ):
        fetch(
            HubFile("timm/x", "model.safetensors"),
            out,
            tmp_path / "hub/model.safetensors.json",
            "backbones.vit.weights",
        )
    assert not out.parent.exists()


def test_missing_repository_names_the_key(monkeypatch, tmp_path):
    def download(repo_id, filename, **kwargs):
        url = f"https://huggingface.co/api/models/{repo_id}"
        response = httpx2.Response(404, request=httpx2.Request("GET", url))  # huggingface_hub's HTTP client
        raise errors.RepositoryNotFoundError(
            f"404 Client Error. Repository Not Found for url: {url}", response=response
        )

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    with pytest.raises(ConfigError, match=r"^backbones.vit.weights: hf-hub:org/nope/model.safetensors: 404"):
        fetch(
            HubFile("org/nope", "model.safetensors"),
            tmp_path / "m.safetensors",
            tmp_path / "m.json",
            "backbones.vit.weights",
        )


@pytest.mark.slow  # starts Snakemake
def test_fetch_weights_rule_fills_results_from_the_cache(tmp_path):
    """`snakemake fetch_weights` end to end: rule, params, script. A pinned commit that is in the cache is
    returned by huggingface_hub without any request; HF_ENDPOINT points at a closed local port regardless."""
    cache = tmp_path / "hf/hub"
    repo = "timm/vit_base_patch16_224.augreg_in1k"
    write_timm_release(snapshot(cache, repo))
    config = {
        "datasets": {"isic": {"kind": "isic2018", "root": "data/isic"}},
        "backbones": {"vit": {**TIMM_CFG, "weights": f"hf-hub:{repo}@{COMMIT}"}},
        "grids": {"similarity": {"backbones": ["vit"], "datasets": ["isic"]}},
        "knn": {"dataset": "isic"},
        "pretrain": {"dataset": "isic"},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(tmp_path / "work"),
            "--configfile",
            str(tmp_path / "config.yaml"),
            "--cores",
            "1",
            "fetch_weights",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    out = tmp_path / "work/results/pretrained/vit/hub/model.safetensors"
    record = json.loads(out.with_name("model.safetensors.json").read_text())
    assert record["repo_id"] == repo and record["revision"] == record["commit"] == COMMIT
    assert out.read_bytes() == (snapshot(cache, repo) / "model.safetensors").read_bytes()
    assert build_backbone({**TIMM_CFG, "name": "vit"}, out).embed_dim == 32
