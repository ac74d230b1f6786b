"""Per-epoch training checkpoints, so a killed or pre-empted fine-tune resumes instead of restarting.

One file per run (`<run>/checkpoint/last.pt`), replaced atomically after every epoch. It holds everything the next
epoch depends on: trainable weights, optimizer and scheduler state, every random generator, the history and the
trajectory so far. A resumed run therefore ends bit-identical to an uninterrupted one on CPU.

The file carries a fingerprint of what defines the run (backbone, recipe, method, pool, seed, the exact weights
and dataset manifest): a checkpoint left by a run whose config has since changed is ignored, not resumed. It is
not a declared output; the fine-tune deletes it once its outputs are complete.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from repdrift.formats.atomic import atomic_write
from repdrift.formats.features import file_sha256

FILE_NAME = "last.pt"


def checkpoint_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoint" / FILE_NAME


def fingerprint(spec: dict[str, Any], files: dict[str, str | Path | None]) -> str:
    """A digest of the run's definition and of the bytes of the files it starts from."""
    content = dict(spec, files={name: file_sha256(path) if path else None for name, path in sorted(files.items())})
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Every random stream the training loop draws from (shuffling, augmentation, dropout)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return dict(
        python=random.getstate(),
        numpy=(kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
        torch=torch.get_rng_state(),
        cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        loader=generator.get_state(),
    )


def set_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    random.setstate(_tuples(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    generator.set_state(state["loader"])


def _tuples(value: Any) -> Any:
    # random.setstate wants the nested tuples it produced; a round trip through torch.save may give lists.
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write under a temporary name, then rename: a kill mid-write leaves the previous epoch's file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path, expected_fingerprint: str) -> dict[str, Any] | None:
    """The saved state if it exists and belongs to this exact run definition, else None."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        # weights_only: plain tensors and Python containers only, nothing is unpickled as code.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: start over rather than fail the run
        print(f"ignoring unreadable checkpoint {path}: {err}", flush=True)
        return None
    if state.get("fingerprint") != expected_fingerprint:
        print(f"ignoring checkpoint {path}: it belongs to a different config, weights or dataset", flush=True)
        return None
    return state


def remove_checkpoint(path: str | Path) -> None:
    shutil.rmtree(Path(path).parent, ignore_errors=True)
