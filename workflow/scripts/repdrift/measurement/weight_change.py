"""The weight change of a run's backbone (Biderman et al. 2024, "LoRA Learns Less and Forgets Less", TMLR: full
fine-tuning's change W_ft - W_0 has a rank 10-100x higher than usual LoRA ranks), measured by the job that holds the
model, here for ViTs.

Per block (1..L, as CKA's layers) and per attention and MLP matrix (`Backbone.block_matrices`: qkv, proj, fc1, fc2,
whatever the library calls them), the singular values of dW = W_after - W_before (float64 on the CPU,
torch.linalg.svdvals, decreasing) and ||dW||_F / ||W_before||_F. The singular values are stored, not a rank, so that
the energy share that defines the rank (`analysis.change_energy`, repdrift.metrics.spectrum.energy_rank) is chosen by
the analyses without training anything again.

W_before is what the run started from: the pre-trained weights, or for Scratch its random initialisation
(`block_weights` of the backbone as built, taken by repdrift.training.finetune before its first step, on the CPU,
the block matrices only). A LoRA run's adapters are merged into the backbone before it is measured, so W_after is
always an ordinary backbone's.

weight_change.parquet (one row per block x matrix): block (Int64, 1..L), matrix (Utf8: qkv, proj, fc1, fc2), rows,
cols (Int64: the matrix's shape as the library stores it), singular_values (List(Float64), min(rows, cols) of them,
decreasing), relative_change (Float64: ||dW||_F / ||W_before||_F).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import torch

from repdrift.formats.atomic import atomic_path
from repdrift.models.backbone import Backbone

WEIGHT_CHANGE_SCHEMA = {
    "block": pl.Int64,
    "matrix": pl.Utf8,
    "rows": pl.Int64,
    "cols": pl.Int64,
    "singular_values": pl.List(pl.Float64),
    "relative_change": pl.Float64,
}


def block_matrix_paths(backbone: Backbone) -> list[tuple[int, str, str]]:
    """(block 1..L, matrix name, parameter path inside the child `model`) of every block matrix, block by block."""
    return [
        (i + 1, matrix, backbone.block_prefix.format(i) + path)
        for i in range(backbone.num_layers)
        for matrix, path in backbone.block_matrices.items()
    ]


def block_weights(backbone: Backbone) -> dict[str, torch.Tensor]:
    """A CPU copy of the backbone's block matrices, keyed by their path inside the child `model`
    (`blocks.0.attn.qkv.weight`): W_0 of a run, taken before training (about 85 M numbers for ViT-B, 340 MB)."""
    params = dict(backbone.model.named_parameters())
    missing = [path for *_, path in block_matrix_paths(backbone) if path not in params]
    if missing:
        raise ValueError(f"{backbone.name}: no parameter {missing[0]} in the backbone (an unmerged adapter?)")
    return {path: params[path].detach().to("cpu", copy=True) for *_, path in block_matrix_paths(backbone)}


def _lookup(before: dict[str, torch.Tensor], after: Backbone, path: str) -> torch.Tensor:
    """A block matrix of `before`, keyed by its path in the child `model` or by the library's own key name
    (a Backbone's state_dict: `visual.` before open_clip's)."""
    for key in (path, after.library_prefix + path):
        if key in before:
            return before[key]
    raise KeyError(f"the weights before hold no {path} (nor {after.library_prefix + path})")


def weight_change(before: dict[str, torch.Tensor] | Backbone, after: Backbone) -> pl.DataFrame:
    """The table of the module docstring: `after`'s block matrices against `before` (a Backbone of the same
    architecture, `block_weights` of one, or a state dict under the library's key names)."""
    if isinstance(before, Backbone):
        before = block_weights(before)
    now = dict(after.model.named_parameters())
    rows = []
    for block, matrix, path in block_matrix_paths(after):
        start = _lookup(before, after, path).detach().to("cpu", torch.float64)
        end = now[path].detach().to("cpu", torch.float64)
        if start.shape != end.shape:
            raise ValueError(f"{path}: shape {tuple(start.shape)} before, {tuple(end.shape)} after")
        delta = end - start
        base = torch.linalg.matrix_norm(start).item()
        rows.append(
            dict(
                block=block,
                matrix=matrix,
                rows=delta.shape[0],
                cols=delta.shape[1],
                singular_values=torch.linalg.svdvals(delta).tolist(),
                relative_change=torch.linalg.matrix_norm(delta).item() / base if base > 0 else float("nan"),
            )
        )
    return pl.DataFrame(rows, schema=WEIGHT_CHANGE_SCHEMA)


def write_weight_change(before: dict[str, torch.Tensor] | Backbone, after: Backbone, path: str | Path) -> pl.DataFrame:
    """Write `weight_change(before, after)` to `path` (weight_change.parquet; atomically) and return it."""
    table = weight_change(before, after)
    with atomic_path(path) as tmp:
        table.write_parquet(tmp)
    return table
