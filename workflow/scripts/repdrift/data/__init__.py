"""Dataset adapters: each reads one dataset in its official on-disk layout into a validated manifest.

``build_dataset(kind, root, **options)`` -> :class:`Dataset`; ``KINDS`` lists the kinds. See each adapter's
module docstring for its layout, options and split convention. Stage "manifests" (rules make_demo_data,
prepare_dataset). Torch-free: only ``repdrift.data.loader`` imports torch. May import repdrift.formats and .errors
only.
"""

from __future__ import annotations

import inspect
import os
from functools import partial
from pathlib import Path

import polars as pl

from repdrift.data import aptos2019, csv_folder, imagenet, isic2018, medfm
from repdrift.data.manifest import Dataset, read_dataset, write_dataset
from repdrift.errors import ConfigError

_ADAPTERS = {
    "isic2018": isic2018.build,
    "aptos2019": aptos2019.build,
    "medfm_chest": partial(medfm.build, kind="medfm_chest"),
    "medfm_colon": partial(medfm.build, kind="medfm_colon"),
    "medfm_endo": partial(medfm.build, kind="medfm_endo"),
    "imagenet": imagenet.build,
    "csv": csv_folder.build,
}
KINDS = tuple(_ADAPTERS)


def options(kind: str) -> dict[str, object]:
    """The options a kind accepts, with their defaults."""
    params = inspect.signature(_adapter(kind)).parameters.values()
    return {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY and p.name != "kind"}


def _adapter(kind: str):
    if kind not in _ADAPTERS:
        raise ConfigError(f"dataset kind {kind!r} is unknown; expected one of {', '.join(KINDS)}")
    return _ADAPTERS[kind]


def build_dataset(kind: str, root: str | os.PathLike, **opts) -> Dataset:
    """Read the dataset of the given kind at root (a folder; for ``csv`` also the CSV file itself)."""
    adapter = _adapter(kind)
    unknown = sorted(set(opts) - set(options(kind)))
    if unknown:
        raise ConfigError(f"dataset kind {kind!r} has no option {unknown[0]!r}; options: {', '.join(options(kind))}")
    return adapter(Path(os.path.abspath(os.path.expanduser(root))), **opts)


def build_manifest(kind: str, root: str | os.PathLike, **opts) -> pl.DataFrame:
    return build_dataset(kind, root, **opts).manifest


__all__ = ["KINDS", "Dataset", "build_dataset", "build_manifest", "options", "read_dataset", "write_dataset"]
