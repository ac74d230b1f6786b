"""The image tower of an open_clip CLIP model as a `Backbone`.

Models are built and loaded only through `open_clip.create_model(arch, pretrained=FILE)`, the route a released
checkpoint takes. An inline tiny config (`model_cfg`) is first registered under `arch` with open_clip's own
config registry (`add_model_config`), so it takes the very same route.
"""

from __future__ import annotations

import atexit
import json
import logging
import re
import shutil
import tempfile
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, DataError
from .backbone import Backbone

_registered: set[str] = set()  # arch names whose config this process registered
_config_dir: Path | None = None


class OpenClipBackbone(Backbone):
    library_prefix = "visual."  # the image tower's keys inside a CLIP checkpoint
    block_prefix = "transformer.resblocks.{}."
    # nn.MultiheadAttention keeps q, k and v in one in_proj_weight; the MLP is c_fc then c_proj.
    block_matrices = {
        "qkv": "attn.in_proj_weight",
        "proj": "attn.out_proj.weight",
        "fc1": "mlp.c_fc.weight",
        "fc2": "mlp.c_proj.weight",
    }
    final_norm_prefixes = ("ln_post.",)  # CLIP's output projection `proj` is not in the head's input

    def _intermediates(self, x, indices):
        out = self.model.forward_intermediates(
            x, indices=indices, output_fmt="NLC", output_extra_tokens=True, intermediates_only=True
        )
        return [
            torch.cat([prefix, patches], dim=1)
            for prefix, patches in zip(out["image_intermediates_prefix"], out["image_intermediates"])
        ]

    def layer_tokens(self, x):
        return self._intermediates(x, None)

    def final_tokens(self, x):
        return self.final_norm(self._intermediates(x, 1)[0])

    def final_norm(self, tokens):
        # ln_post on every token; CLIP's output projection `proj` is left out, so D is the tower's width.
        return self.model.ln_post(tokens)

    def last_attention(self, x):
        attn = self.model.transformer.resblocks[-1].attn
        if not isinstance(attn, nn.MultiheadAttention):
            raise NotImplementedError(f"attention maps need nn.MultiheadAttention blocks, not {type(attn).__name__}")
        captured = []
        # open_clip calls the attention with need_weights=False: recompute q, k from the block's ln_1 output.
        hook = attn.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
        try:
            self._intermediates(x, 1)
        finally:
            hook.remove()
        tokens = captured[0] if attn.batch_first else captured[0].transpose(0, 1)
        dim, heads = attn.embed_dim, attn.num_heads
        bias = attn.in_proj_bias[: 2 * dim] if attn.in_proj_bias is not None else None
        q, k = F.linear(tokens, attn.in_proj_weight[: 2 * dim], bias).chunk(2, dim=-1)
        q, k = (t.unflatten(-1, (heads, dim // heads)).transpose(1, 2) for t in (q, k))
        return (q @ k.transpose(-2, -1) * (dim // heads) ** -0.5).softmax(dim=-1)


def register_model_config(arch: str, model_cfg: dict) -> None:
    """Make an inline CLIP config known to open_clip under `arch` (a JSON file in a per-process folder)."""
    global _config_dir
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", arch):
        raise ConfigError(f"backbone arch {arch!r}: an inline open_clip model_cfg needs a plain name ([A-Za-z0-9_.-])")
    missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if k not in model_cfg]
    if missing:
        raise ConfigError(f"backbone model_cfg for {arch!r} lacks {', '.join(missing)}")
    wanted = json.loads(json.dumps(model_cfg))
    existing = open_clip.get_model_config(arch)
    if existing == wanted:
        return
    if existing is not None and arch not in _registered:
        raise ConfigError(f"backbone arch {arch!r} is an open_clip built-in; give the inline model_cfg another name")
    if _config_dir is None:
        _config_dir = Path(tempfile.mkdtemp(prefix="repdrift-open_clip-configs-"))
        atexit.register(shutil.rmtree, _config_dir, True)
    path = _config_dir / f"{arch}.json"
    path.write_text(json.dumps(wanted))
    open_clip.add_model_config(path)
    _registered.add(arch)


def build_open_clip(spec: dict, weights: str | None) -> OpenClipBackbone:
    return wrap_visual(spec, create_clip(spec, weights))


def wrap_visual(spec: dict, model: nn.Module) -> OpenClipBackbone:
    """The image tower of CLIP `model` as a Backbone (sharing its parameters)."""
    visual = model.visual
    if getattr(visual, "attn_pool", None) is not None or not hasattr(visual, "transformer"):
        raise ConfigError(f"backbone arch {spec['arch']!r}: only plain open_clip ViT image towers are supported")
    preprocess = visual.preprocess_cfg
    block = visual.transformer.resblocks[-1]
    return OpenClipBackbone(
        visual,
        name=spec["name"],
        library="open_clip",
        arch=spec["arch"],
        paradigm=spec["paradigm"],
        num_layers=len(visual.transformer.resblocks),
        embed_dim=visual.transformer.width,
        num_heads=block.attn.num_heads,
        img_size=visual.image_size[0],
        patch_size=visual.patch_size[0],
        mean=spec["mean"] or preprocess["mean"],
        std=spec["std"] or preprocess["std"],
        interpolation=spec["interpolation"] or preprocess["interpolation"],
        crop_pct=spec["crop_pct"],
    )


def create_clip(spec: dict, weights: str | None) -> nn.Module:
    """The whole open_clip CLIP model (both towers) for `spec`, random or loaded from a local file."""
    if spec["model_cfg"] is not None:
        register_model_config(spec["arch"], spec["model_cfg"])
    model_cfg = open_clip.get_model_config(spec["arch"])
    if model_cfg is None:
        raise ConfigError(
            f"backbone arch {spec['arch']!r} is not an open_clip model config "
            f"(give an inline model_cfg, or one of open_clip.list_models())"
        )
    kwargs = dict(spec["model_kwargs"])
    if spec["img_size"] is not None and spec["img_size"] != model_cfg["vision_cfg"]["image_size"]:
        kwargs["force_image_size"] = spec["img_size"]  # the loader resizes position embeddings to it
    try:
        if weights is None:
            return open_clip.create_model(spec["arch"], **kwargs)
        if _has_text_tower(weights):
            return open_clip.create_model(spec["arch"], pretrained=str(weights), **kwargs)
        # An image tower saved on its own (a fine-tuned backbone): open_clip's loader, strict on the tower.
        with _without_random_init_notice():  # the weights do come, just after creation
            model = open_clip.create_model(spec["arch"], **kwargs)
        result = open_clip.load_checkpoint(model, str(weights), strict=False)
    except RuntimeError as error:
        raise DataError(
            f"weights file {weights} does not fit backbone {spec['arch']!r}: {' | '.join(str(error).splitlines()[:4])}"
        ) from error
    bad = [k for k in result.missing_keys if k.startswith("visual.")] + list(result.unexpected_keys)
    if bad:
        raise DataError(
            f"weights file {weights} does not fit backbone {spec['arch']!r}: "
            f"keys missing or unexpected: {', '.join(bad[:8])}"
        )
    return model


class _without_random_init_notice(logging.Filter):
    """Drop open_clip's root-logger warning that the model was initialised randomly, while in this block."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("No pretrained weights loaded")

    def __enter__(self):
        logging.getLogger().addFilter(self)

    def __exit__(self, *exc):
        logging.getLogger().removeFilter(self)


def _has_text_tower(weights) -> bool:
    """Whether a checkpoint holds a whole CLIP model, judged from its key names without reading its tensors."""
    path = str(weights)
    if path.endswith(".safetensors"):
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            keys = list(f.keys())
    else:
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # legacy (non-zip) serialisation cannot be memory-mapped
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        keys = list(checkpoint.get("state_dict", checkpoint))
    return any(not k.removeprefix("module.").startswith("visual.") for k in keys)
