"""The library-independent part of a backbone: pooling, preprocessing, and library key names.

A `Backbone` wraps one library model (a timm `VisionTransformer`, or the image tower of an open_clip `CLIP`)
as its child `model`. Subclasses say how to run that model (`layer_tokens`, `final_tokens`, `last_attention`);
everything every caller needs on top of that lives here.
"""

from __future__ import annotations

import torch
from PIL import Image
from torch import nn
from torchvision.transforms import v2

from repdrift.study import POOLS  # the study's pools, one tuple

INTERPOLATIONS = {
    "bicubic": v2.InterpolationMode.BICUBIC,
    "bilinear": v2.InterpolationMode.BILINEAR,
    "nearest": v2.InterpolationMode.NEAREST,
}


def pool_tokens(tokens: torch.Tensor, pool: str) -> torch.Tensor:
    """(B, 1 + N, D) tokens, CLS first -> (B, D): the CLS token or the mean of the patch tokens."""
    if pool == "cls":
        return tokens[:, 0]
    if pool == "mean":
        return tokens[:, 1:].mean(dim=1)
    raise ValueError(f"unknown pool {pool!r}: expected one of {', '.join(POOLS)}")


def to_rgb(image):
    # Greyscale or palette files (chest X-rays, some PNGs) must reach the 3-channel stem as RGB.
    if isinstance(image, Image.Image) and image.mode != "RGB":
        return image.convert("RGB")
    return image


class Backbone(nn.Module):
    """A pre-trained (or randomly initialised) vision transformer, seen as a stack of token layers.

    Attributes: `name`, `library`, `arch`, `paradigm`, `num_layers` (blocks), `embed_dim` (token width D),
    `num_heads`, `img_size`, `patch_size`, `mean`, `std`, `interpolation`, `crop_pct`.

    `state_dict()` uses the library's own key names (timm: `blocks.0.attn.qkv.weight`; open_clip: the CLIP
    model's `visual.transformer.resblocks.0...`), so a saved file loads through the library's loader; the
    hooks below translate between those names and the child `model.`.
    """

    #: what the child's keys are called in the library's own checkpoints ("" for timm, "visual." for open_clip)
    library_prefix = ""
    #: where block i's parameters are inside the child `model` (a format string of i)
    block_prefix = "blocks.{}."
    #: each block's attention and MLP weight matrices, by one name for every library: the modules LoRA adapts and
    #: the matrices whose change repdrift.training.weight_change measures (a parameter path inside a block)
    block_matrices = {
        "qkv": "attn.qkv.weight",
        "proj": "attn.proj.weight",
        "fc1": "mlp.fc1.weight",
        "fc2": "mlp.fc2.weight",
    }
    #: the final norm's parameters inside `model` (prefixes), trained with the top blocks by `partial`
    final_norm_prefixes = ("norm.", "fc_norm.")

    def __init__(
        self,
        model: nn.Module,
        *,
        name: str,
        library: str,
        arch: str,
        paradigm: str,
        num_layers: int,
        embed_dim: int,
        num_heads: int,
        img_size: int,
        patch_size: int,
        mean,
        std,
        interpolation: str,
        crop_pct: float,
    ):
        super().__init__()
        self.model = model
        self.name, self.library, self.arch, self.paradigm = name, library, arch, paradigm
        self.num_layers, self.embed_dim, self.num_heads = num_layers, embed_dim, num_heads
        self.img_size, self.patch_size = img_size, patch_size
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self.interpolation, self.crop_pct = interpolation, crop_pct
        self.register_state_dict_post_hook(_to_library_keys)
        self.register_load_state_dict_pre_hook(_from_library_keys)

    def block_of(self, name: str) -> int | None:
        """The block a parameter of `model` (a named_parameters name, without `model.`) belongs to, or None."""
        for i in range(self.num_layers):
            if name.startswith(self.block_prefix.format(i)):
                return i
        return None

    @property
    def num_patches(self) -> int:
        return (self.img_size // self.patch_size) ** 2

    # --- implemented per library -------------------------------------------------------------------------
    def layer_tokens(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of every block, each (B, 1 + N, D), CLS first, before the final norm."""
        raise NotImplementedError

    def final_norm(self, tokens: torch.Tensor) -> torch.Tensor:
        """The model's final norm applied to the last block's tokens (B, 1 + N, D)."""
        raise NotImplementedError

    def head_input(self, final_tokens: torch.Tensor, pool: str) -> torch.Tensor:
        """The representation (B, D) a classification head sits on, from the final normed tokens."""
        return pool_tokens(final_tokens, pool)

    def last_attention(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax attention probabilities of the last block, (B, heads, 1 + N, 1 + N)."""
        raise NotImplementedError

    # --- shared ------------------------------------------------------------------------------------------
    def final_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The last block's tokens after the model's final norm, (B, 1 + N, D)."""
        return self.final_norm(self.layer_tokens(x)[-1])

    def pooled_layers(self, x: torch.Tensor, pools=POOLS) -> dict[str, torch.Tensor]:
        """Every block's output pooled: {pool: (L, B, D)}."""
        tokens = self.layer_tokens(x)
        return {pool: torch.stack([pool_tokens(t, pool) for t in tokens]) for pool in pools}

    def representations(self, x: torch.Tensor, pools=POOLS) -> dict[str, torch.Tensor]:
        """Every block's output pooled, then the final representation, from one forward pass: {pool: (L + 1, B, D)}.

        Index L is what the head and the k-NN see (`forward`): the last block after the final norm, pooled.
        """
        tokens = self.layer_tokens(x)
        final = self.final_norm(tokens[-1])
        return {
            pool: torch.stack([*(pool_tokens(t, pool) for t in tokens), self.head_input(final, pool)]) for pool in pools
        }

    def forward(self, x: torch.Tensor, pool: str = "cls") -> torch.Tensor:
        """The final representation (B, D) that a classification head sits on."""
        return self.head_input(self.final_tokens(x), pool)

    def transform(self, train: bool) -> v2.Compose:
        """This backbone's preprocessing of a PIL image (or uint8 CHW tensor) into a normalised float tensor."""
        mode = INTERPOLATIONS[self.interpolation]
        if train:
            geometry = [
                v2.RandomResizedCrop(self.img_size, scale=(0.5, 1.0), interpolation=mode, antialias=True),
                v2.RandomHorizontalFlip(),
            ]
        else:
            resize = int(self.img_size / self.crop_pct)
            geometry = [v2.Resize(resize, interpolation=mode, antialias=True), v2.CenterCrop(self.img_size)]
        return v2.Compose(
            [
                v2.Lambda(to_rgb),
                v2.ToImage(),
                *geometry,
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(self.mean, self.std),
            ]
        )

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, library={self.library}, arch={self.arch!r}, paradigm={self.paradigm}, "
            f"layers={self.num_layers}, dim={self.embed_dim}, img_size={self.img_size}, "
            f"patch_size={self.patch_size}"
        )


def _to_library_keys(module: Backbone, state_dict, prefix: str, local_metadata) -> None:
    """state_dict post-hook: `{prefix}model.X` -> `{prefix}{library_prefix}X`."""
    old, new = prefix + "model.", prefix + module.library_prefix
    _rename(state_dict, old, new)
    # The per-module version metadata moves along (ViT modules keep no versioned state, but keep it tidy).
    metadata = getattr(state_dict, "_metadata", None)
    if metadata is not None:
        for key in [k for k in metadata if (k + ".").startswith(old)]:
            metadata.setdefault((new + (key + ".")[len(old) :]).rstrip("."), metadata.pop(key))


def _from_library_keys(module: Backbone, state_dict, prefix: str, *args) -> None:
    """load_state_dict pre-hook: `{prefix}{library_prefix}X` -> `{prefix}model.X` (keys already under
    `model.` pass; the caller's metadata is left alone: modules without it load as version None, which no ViT
    module reads)."""
    _rename(state_dict, prefix + module.library_prefix, prefix + "model.", skip=prefix + "model.")


def _rename(state_dict, old: str, new: str, skip: str | None = None) -> None:
    # Popping and re-inserting keeps the order: the renamed keys are a contiguous run of the dict.
    for key in [k for k in state_dict if k.startswith(old) and not (skip and k.startswith(skip))]:
        state_dict[new + key[len(old) :]] = state_dict.pop(key)
