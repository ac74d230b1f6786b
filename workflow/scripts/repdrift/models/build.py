"""Building a backbone: a `backbones:` config entry (+ an optional local weights file) -> a `Backbone`.

Config entry (one value of the config's `backbones:` mapping):

    library        required  `timm` | `open_clip`
    arch           required  timm model name (`vit_base_patch16_224`, `vit_base_patch14_dinov2.lvd142m`) or
                             open_clip model config name (`ViT-B-16`, or the name given to an inline model_cfg)
    paradigm       required  `supervised` | `clip` | `self_supervised`: how the weights were pre-trained (and
                             which demo pre-training makes them)
    img_size       optional  input side in pixels; default: the model's own (224; DINOv2 518). Position
                             embeddings of a checkpoint are resampled to it by the library's loader.
    mean, std      optional  normalisation, 3 floats each; default: the library's pretrained config
                             (timm `pretrained_cfg`; open_clip: OpenAI CLIP constants)
    interpolation  optional  `bicubic` | `bilinear` | `nearest`; default: the library's (bicubic)
    crop_pct       optional  eval transform resizes to img_size / crop_pct, then centre-crops; default 1.0
    model_kwargs   optional  extra constructor kwargs: timm `create_model(**model_kwargs)` (e.g. patch_size,
                             embed_dim, depth, num_heads); open_clip `create_model(**model_kwargs)`
    model_cfg      optional  open_clip only: an inline CLIP config {embed_dim, vision_cfg, text_cfg}, registered
                             with open_clip under `arch` (which must then not be a built-in name)
    name           optional  the backbone's name (default: arch); the workflow passes the config key
    weights        ignored   the config's weights (repdrift.models.weights resolves it to the file given here)

Any other key is a ConfigError naming it (the config schema lists the same keys, less `name`). Examples:

    vit:        {library: timm, arch: vit_base_patch16_224, paradigm: supervised, img_size: 32,
                 mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5],
                 model_kwargs: {patch_size: 4, embed_dim: 48, depth: 4, num_heads: 2}}      # the demo's
    dino:       {library: timm, arch: vit_base_patch16_224, paradigm: self_supervised, img_size: 32,
                 mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225],
                 model_kwargs: {patch_size: 4, embed_dim: 48, depth: 4, num_heads: 2}}
    clip:       {library: open_clip, arch: repdrift-tiny-clip, paradigm: clip, img_size: 32,
                 model_cfg: {embed_dim: 48,
                             vision_cfg: {image_size: 32, layers: 4, width: 48, head_width: 24, patch_size: 4},
                             text_cfg: {context_length: 16, vocab_size: 49408, width: 48, heads: 2, layers: 2}}}
    vit_b16:    {library: timm, arch: vit_base_patch16_224.augreg_in1k, paradigm: supervised, img_size: 224}
    dinov2_b14: {library: timm, arch: vit_base_patch14_dinov2.lvd142m, paradigm: self_supervised,
                 img_size: 224}        # 518 = its pre-training size; 224 resamples the position embeddings
    clip_b16:   {library: open_clip, arch: ViT-B-16, paradigm: clip, img_size: 224}

`weights`: None builds a randomly initialised model (the Scratch method); a local file is loaded by the
library's own loader, exactly as a released checkpoint is: timm `create_model(arch, pretrained=True,
pretrained_cfg_overlay=dict(file=..., custom_load=False), num_classes=0)`, open_clip `create_model(arch,
pretrained=FILE)` (keeping `model.visual`). Nothing is ever downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

from safetensors.torch import save_file
from torch import nn

from ..errors import ConfigError
from ..formats.atomic import atomic_path
from .backbone import INTERPOLATIONS, Backbone

LIBRARIES = ("timm", "open_clip")
PARADIGMS = ("supervised", "clip", "self_supervised")
BACKBONE_KEYS = (
    "library",
    "arch",
    "paradigm",
    "img_size",
    "mean",
    "std",
    "interpolation",
    "crop_pct",
    "model_kwargs",
    "model_cfg",
    "name",
)
# Keys of a config entry that the workflow passes along but the builder does not read.
PASSED_KEYS = ("weights",)


def backbone_spec(cfg: dict) -> dict:
    """Validate a config entry and fill in the defaults: every key of BACKBONE_KEYS present."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"a backbone config must be a mapping, got {type(cfg).__name__}")
    unknown = [key for key in cfg if key not in BACKBONE_KEYS + PASSED_KEYS]
    if unknown:
        name = cfg.get("name") or cfg.get("arch")
        raise ConfigError(
            f"{f'backbone {name!r}' if name else 'backbone config'}: unknown key(s) "
            f"{', '.join(map(repr, unknown))} (valid keys: {', '.join(BACKBONE_KEYS + PASSED_KEYS)})"
        )
    for key in ("library", "arch", "paradigm"):
        if not cfg.get(key):
            raise ConfigError(f"backbone config lacks required key {key!r}")
    name = cfg.get("name") or cfg["arch"]
    spec = {key: cfg.get(key) for key in BACKBONE_KEYS} | {"name": name}
    where = f"backbone {name!r}"
    if spec["library"] not in LIBRARIES:
        raise ConfigError(f"{where}: unknown library {spec['library']!r} (expected one of {', '.join(LIBRARIES)})")
    if spec["paradigm"] not in PARADIGMS:
        raise ConfigError(f"{where}: unknown paradigm {spec['paradigm']!r} (expected one of {', '.join(PARADIGMS)})")
    if spec["img_size"] is not None and (not isinstance(spec["img_size"], int) or spec["img_size"] <= 0):
        raise ConfigError(f"{where}: img_size must be a positive integer, got {spec['img_size']!r}")
    for key in ("mean", "std"):
        value = spec[key]
        if value is not None and (len(value) != 3 or not all(isinstance(v, (int, float)) for v in value)):
            raise ConfigError(f"{where}: {key} must be 3 numbers, got {value!r}")
    if spec["interpolation"] is not None and spec["interpolation"] not in INTERPOLATIONS:
        raise ConfigError(
            f"{where}: unknown interpolation {spec['interpolation']!r} (expected one of {', '.join(INTERPOLATIONS)})"
        )
    spec["crop_pct"] = 1.0 if spec["crop_pct"] is None else float(spec["crop_pct"])
    if not 0 < spec["crop_pct"] <= 1:
        raise ConfigError(f"{where}: crop_pct must be in (0, 1], got {spec['crop_pct']}")
    spec["model_kwargs"] = dict(spec["model_kwargs"] or {})
    if spec["model_cfg"] is not None and spec["library"] != "open_clip":
        raise ConfigError(f"{where}: model_cfg is for library open_clip only")
    return spec


def build_backbone(cfg: dict, weights: str | os.PathLike | None = None) -> Backbone:
    """A `Backbone` for config entry `cfg`: random init if `weights` is None, else loaded from that local file."""
    spec = backbone_spec(cfg)
    if weights is not None and not Path(weights).is_file():
        raise ConfigError(f"backbone {spec['name']!r}: weights file not found: {weights}")
    try:
        if spec["library"] == "timm":
            from .timm_backbone import build_timm, check_arch

            check_arch(spec)
            return build_timm(spec, weights)
        from .open_clip_backbone import build_open_clip

        return build_open_clip(spec, weights)
    except TypeError as error:  # a constructor kwarg the model does not take
        raise ConfigError(f"backbone {spec['name']!r}: model_kwargs/model_cfg rejected: {error}") from error


def save_backbone_weights(obj: nn.Module, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write `obj`'s weights (a Backbone, a timm model or an open_clip CLIP) as safetensors with the library's
    key names, so `build_backbone(cfg, path)` loads them back. Written to a temporary name, then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A Backbone's state_dict already carries library key names.
    tensors, seen = {}, set()
    for key, value in obj.state_dict().items():
        value = value.detach().to("cpu").contiguous()
        if value.data_ptr() in seen:  # safetensors refuses tensors that share storage
            value = value.clone()
        seen.add(value.data_ptr())
        tensors[key] = value
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt", **{k: str(v) for k, v in (metadata or {}).items()}})
    return path
