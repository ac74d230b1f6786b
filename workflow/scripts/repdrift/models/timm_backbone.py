"""timm vision transformers (supervised ViT, DINOv2, timm's copies of CLIP towers) as a `Backbone`."""

from __future__ import annotations

import logging
from contextlib import contextmanager

import timm
import torch

from ..errors import ConfigError, DataError
from .backbone import Backbone, pool_tokens

_BUILDER_LOGGER = "timm.models._builder"


class TimmBackbone(Backbone):
    library_prefix = ""

    @property
    def _num_registers(self) -> int:
        return self.model.num_prefix_tokens - 1

    def layer_tokens(self, x):
        layers = self.model.forward_intermediates(
            x, indices=None, return_prefix_tokens=True, output_fmt="NLC", intermediates_only=True
        )
        # prefix = CLS, then register tokens (DINOv2 `_reg` models): keep CLS only.
        return [torch.cat([prefix[:, :1], patches], dim=1) for patches, prefix in layers]

    def final_norm(self, tokens):
        # A per-token LayerNorm: dropping the register tokens before it changes nothing.
        return self.model.norm(tokens)

    def head_input(self, final_tokens, pool):
        # fc_norm is Identity unless the model normalises after pooling (then `norm` is the Identity).
        return self.model.fc_norm(pool_tokens(final_tokens, pool))

    def last_attention(self, x):
        attn = self.model.blocks[-1].attn
        captured = []
        # The softmax is only materialised on the non-fused path; the input of attn_drop is that softmax.
        hook = attn.attn_drop.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
        fused, attn.fused_attn = attn.fused_attn, False
        try:
            self.model.forward_features(x)
        finally:
            attn.fused_attn = fused
            hook.remove()
        keep = [0, *range(self.model.num_prefix_tokens, captured[0].shape[-1])]
        return captured[0][:, :, keep][:, :, :, keep] if self._num_registers else captured[0]


def check_arch(spec: dict) -> None:
    if not timm.is_model(spec["arch"]):
        raise ConfigError(f"backbone {spec['name']!r}: arch {spec['arch']!r} is not a timm model")
    try:  # the tag after the dot picks the pretrained config (mean / std, checkpoint filter)
        timm.models.get_pretrained_cfg(spec["arch"], allow_unregistered=False)
    except RuntimeError as error:
        raise ConfigError(f"backbone {spec['name']!r}: arch {spec['arch']!r}: {error}") from error


def build_timm(spec: dict, weights: str | None) -> TimmBackbone:
    """`timm.create_model` with the library's own loader for a local file (its checkpoint filter converts
    OpenCLIP / original DINOv2 keys and resamples position embeddings to `img_size`)."""
    kwargs = dict(spec["model_kwargs"], num_classes=0)
    if spec["img_size"] is not None:
        kwargs["img_size"] = spec["img_size"]
    if weights is None:
        model = timm.create_model(spec["arch"], pretrained=False, **kwargs)
    else:
        # custom_load=False: `augreg_*` configs would otherwise send any file to the .npz loader.
        overlay = dict(file=str(weights), custom_load=False)
        with _strict_load_report(weights):
            model = timm.create_model(spec["arch"], pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    if getattr(model, "cls_token", None) is None or not hasattr(model, "forward_intermediates"):
        raise ConfigError(f"backbone {spec['name']!r}: timm arch {spec['arch']!r} is not a ViT with a CLS token")
    pretrained = model.pretrained_cfg
    img_size = model.patch_embed.img_size[0]
    return TimmBackbone(
        model,
        name=spec["name"],
        library="timm",
        arch=spec["arch"],
        paradigm=spec["paradigm"],
        num_layers=len(model.blocks),
        embed_dim=model.embed_dim,
        num_heads=model.blocks[-1].attn.num_heads,
        img_size=img_size,
        patch_size=model.patch_embed.patch_size[0],
        mean=spec["mean"] or pretrained["mean"],
        std=spec["std"] or pretrained["std"],
        interpolation=spec["interpolation"] or pretrained.get("interpolation", "bicubic"),
        crop_pct=spec["crop_pct"],
    )


@contextmanager
def _strict_load_report(weights):
    """Turn timm's lenient load into a strict one.

    When the checkpoint's head size differs from ours (a supervised checkpoint's 1000-class head; we build
    headless), timm drops the head and loads with strict=False, only *logging* missing / unexpected keys. A weights
    file of the wrong model would then load silently into a half-random network, so those log records become errors
    here.
    """
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = logging.getLogger(_BUILDER_LOGGER)
    handler, level = Collect(logging.INFO), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    except RuntimeError as error:  # shape mismatches and strict-load failures
        raise DataError(f"weights file {weights} does not fit this backbone: {_summary(error)}") from error
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    for record in records:
        message = record.getMessage()
        if message.startswith(("Missing keys", "Unexpected keys")):
            raise DataError(f"weights file {weights} does not fit this backbone: {message[:400]}")


def _summary(error: Exception, lines: int = 4) -> str:
    return " | ".join(line.strip() for line in str(error).splitlines()[:lines] if line.strip())
