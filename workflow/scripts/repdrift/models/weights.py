"""Where a backbone's weights come from: the config's `weights:` value -> the local file the rules read.

    weights: demo                                  pre-trained by rule pretrain_demo
    weights: /path/to/checkpoint.safetensors       a local file (.safetensors, .bin, .pth, .pt)
    weights: hf-hub:OWNER/NAME[/PATH/IN/REPO][@REVISION]

`hf-hub:` names one file of a Hugging Face Hub model repository. Without a path, the file is the one each
library publishes its checkpoints as: timm `model.safetensors`, open_clip `open_clip_model.safetensors` (the
`model.safetensors` of an open_clip repository is the Transformers format, which open_clip does not read).
`@REVISION` (a commit, tag or branch) pins the version; without it, `main` as it is when fetched.

Rule fetch_checkpoint (a localrule, run where there is internet: a login node) downloads the file into the
Hugging Face cache and copies it to `results/pretrained/{backbone}/hub/{file name}`, beside a JSON record of
where it came from (repository, revision, resolved commit, sha256). Every GPU job reads that copy through the
local-file route of `repdrift.models.build_backbone`, so a compute node needs neither the network nor the cache.

Torch-free and cheap to import: the Snakefile imports it while building the DAG.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from repdrift.errors import ConfigError, DataError
from repdrift.formats.atomic import atomic_path, atomic_write

HUB_PREFIX = "hf-hub:"
DEFAULT_FILES = {"timm": "model.safetensors", "open_clip": "open_clip_model.safetensors"}
SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")  # what timm's and open_clip's file loaders read
# OWNER/NAME, then optionally a path inside the repository, then optionally @REVISION.
_HUB = re.compile(r"(?P<repo>[\w.-]+/[\w.-]+)(?P<path>(?:/[^/@\s]+)+)?(?:@(?P<revision>[^\s@]+))?")


@dataclass(frozen=True)
class HubFile:
    repo_id: str
    filename: str  # path inside the repository
    revision: str | None = None

    @property
    def local_name(self) -> str:
        return PurePosixPath(self.filename).name

    def __str__(self) -> str:
        return f"{HUB_PREFIX}{self.repo_id}/{self.filename}" + (f"@{self.revision}" if self.revision else "")


def hub_file(weights: str, library: str, key: str = "weights") -> HubFile | None:
    """The Hub file an `hf-hub:` value names (None for any other value); `key` names it in errors."""
    if not weights.startswith(HUB_PREFIX):
        return None
    match = _HUB.fullmatch(weights[len(HUB_PREFIX) :])
    if match is None:
        raise ConfigError(f"{key}: {weights!r} is not hf-hub:OWNER/NAME[/PATH/IN/REPO][@REVISION]")
    path = (match["path"] or "").lstrip("/")
    if not path:
        if library not in DEFAULT_FILES:
            raise ConfigError(f"{key}: no default checkpoint file for library {library!r}; name the file")
        path = DEFAULT_FILES[library]
    if not path.endswith(SUFFIXES):
        raise ConfigError(f"{key}: {path!r} is not a checkpoint file ({', '.join(SUFFIXES)})")
    return HubFile(match["repo"], path, match["revision"])


def hub_files(backbones: dict, names) -> dict[str, HubFile]:
    """Backbone name -> Hub file, for those of `names` (keys of the config's `backbones`) named `hf-hub:`."""
    files = {}
    for name in names:
        entry = backbones[name]
        hub = hub_file(str(entry["weights"]), entry.get("library", ""), f"backbones.{name}.weights")
        if hub is not None:
            files[name] = hub
    return files


def weights_path(backbone: str, cfg: dict) -> str:
    """The local file the rules read for backbone `backbone` (config entry `cfg`)."""
    weights = str(cfg["weights"])
    if weights == "demo":
        return f"results/pretrained/{backbone}/weights.safetensors"
    hub = hub_file(weights, cfg.get("library", ""), f"backbones.{backbone}.weights")
    if hub is not None:
        return f"results/pretrained/{backbone}/hub/{hub.local_name}"
    return weights


def fetch(hub: HubFile, out_path: str | os.PathLike, record_path: str | os.PathLike, key: str = "weights") -> dict:
    """Download `hub` into the Hugging Face cache (or find it there) and copy it to `out_path`; write a JSON
    record of its origin to `record_path`. Returns the record."""
    import huggingface_hub
    from huggingface_hub import constants, errors

    try:
        cached = huggingface_hub.hf_hub_download(hub.repo_id, hub.filename, revision=hub.revision)
    except errors.LocalEntryNotFoundError:  # offline, or the Hub unreachable, and not in the cache
        raise DataError(
            f"{key}: {hub} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and the Hub cannot be "
            f"reached; run `snakemake fetch_weights` on a machine with internet (HF_HUB_OFFLINE unset or 0)"
        ) from None
    except (errors.RepositoryNotFoundError, errors.RevisionNotFoundError, errors.EntryNotFoundError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"{key}: {hub}: {first}") from None
    out_path, record_path = Path(out_path), Path(record_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    sha256, size = _copy(Path(cached), out_path)
    parts = Path(cached).parts
    commit = parts[parts.index("snapshots") + 1] if "snapshots" in parts[:-1] else None
    record = dict(
        asdict(hub),
        commit=commit,
        sha256=sha256,
        bytes=size,
        cached_path=str(cached),
        fetched_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    atomic_write(record_path, lambda tmp: tmp.write_text(json.dumps(record, indent=2) + "\n"))
    return record


def _copy(source: Path, target: Path, chunk: int = 1 << 24) -> tuple[str, int]:
    """Copy (a real copy: the cache may be cleaned or absent on compute nodes) under a temporary name, then
    rename; returns (sha256, bytes)."""
    digest, size = hashlib.sha256(), 0
    with atomic_path(target) as tmp, open(source, "rb") as src, open(tmp, "wb") as dst:
        while block := src.read(chunk):
            digest.update(block)
            dst.write(block)
            size += len(block)
    return digest.hexdigest(), size
