"""Parameter-efficient fine-tuning: which part of the backbone a run of `lora`, `bitfit` or `partial` trains.

- `lora`: LoRA adapters (Hu et al. 2022) through the peft library, W + (alpha / r) B A, on every block's attention
  and MLP matrices, the modules each Backbone names in `block_matrices`: timm's attn.qkv, attn.proj, mlp.fc1 and
  mlp.fc2 (nn.Linear); open_clip's attn, an nn.MultiheadAttention whose in_proj (q, k and v together) and out_proj
  peft adapts as one module, and mlp.c_fc and mlp.c_proj. These are the matrices of the rank-of-change measurement,
  the layers Biderman et al. 2024 adapt ("all modules") in their comparison with full fine-tuning. The rest of the
  backbone is frozen; the head is trained in full. When training ends the adapters are merged into the weights and
  peft's wrappers removed (`Adapters.merge`), so the saved model, and every stage after it, is an ordinary backbone
  with the library's key names.
- `bitfit`: the backbone's biases only (Ben Zaken et al. 2022: every bias, the norms' included) and the head.
- `partial`: the top `blocks` blocks, the final norm and the head; the patch embedding, position embedding, class
  token and lower blocks frozen.

Each trains with Full's recipe at `lr_scale` x train.lr (repdrift.training.preserving.phases) and resumes from its
checkpoint like any run: the checkpoint holds the trainable parameters (for LoRA, the whole model too: peft adapts
open_clip's nn.MultiheadAttention by merging the adapter into its frozen weights for each forward and unmerging it
after, which moves them by rounding; tests/test_parameter_efficient.py resumes such a run).
"""

from __future__ import annotations

import torch

from repdrift.errors import ConfigError
from repdrift.models.backbone import Backbone

PEFT_METHODS = ("lora", "bitfit", "partial")


def lora_targets(backbone: Backbone) -> list[str]:
    """The modules LoRA adapts, by their names inside `backbone.model`: the module of each block matrix; a matrix
    kept on its module itself (nn.MultiheadAttention's in_proj_weight) makes that whole module the target, which
    covers its children (out_proj)."""
    modules = set()
    for block in range(backbone.num_layers):
        for path in backbone.block_matrices.values():
            module = path.rsplit(".", 1)[0]
            modules.add(backbone.block_prefix.format(block) + module)
    return sorted(m for m in modules if not any(m.startswith(other + ".") for other in modules))


class Adapters:
    """LoRA adapters injected into a backbone's model, in place (peft's LoraModel); `merge()` folds them into the
    weights and takes peft's wrappers out again."""

    def __init__(self, backbone: Backbone, rank: int, alpha_ratio: float, dropout: float):
        from peft import LoraConfig, LoraModel  # imported by LoRA runs only (1.3 s)

        self.backbone = backbone
        config = LoraConfig(
            r=rank,
            lora_alpha=alpha_ratio * rank,
            lora_dropout=dropout,
            target_modules=lora_targets(backbone),
            bias="none",
        )
        # A's random initialisation must not move this run's random streams: a LoRA run sees the same augmentations
        # and data order as the Full run of its seed (their heads are the same already).
        with torch.random.fork_rng(devices=[]):
            self.lora = LoraModel(backbone.model, config, "default")  # freezes everything but the adapters

    def merge(self) -> None:
        self.backbone.model = self.lora.merge_and_unload()


def freeze_for(method: str, options: dict, backbone: Backbone) -> Adapters | None:
    """Make `backbone` train as `method` does: LoRA's adapters injected (returned, to merge when training ends),
    or BitFit's and partial's frozen parameters set; nothing for the other methods."""
    if method == "lora":
        return Adapters(backbone, options["rank"], options["alpha_ratio"], options["dropout"])
    if method == "bitfit":
        for name, param in backbone.model.named_parameters():
            param.requires_grad_(name.endswith("bias"))  # open_clip's in_proj_bias too
    elif method == "partial":
        top = options["blocks"]
        if top > backbone.num_layers:
            raise ConfigError(
                f"preserving.partial.blocks: {top} blocks to train, but backbone {backbone.name!r} has "
                f"{backbone.num_layers}"
            )
        first = backbone.num_layers - top
        for name, param in backbone.model.named_parameters():
            block = backbone.block_of(name)
            top_block = block is not None and block >= first
            param.requires_grad_(top_block or name.startswith(backbone.final_norm_prefixes))
    return None
