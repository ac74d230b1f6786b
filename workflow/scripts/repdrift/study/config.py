"""Unknown config keys, named one per line before the JSON schema validation runs.

The schema closes its mappings (`additionalProperties: false`), so a misspelt key (`img_sise:` in a backbone
entry) is an error, not a silently ignored value. Snakemake's `validate` reports it under a dump of the schema
that names neither the entry nor the valid keys; `unknown_keys` says `backbones.vit.img_sise: unknown key, ...`.
"""

from __future__ import annotations

import difflib
import os

import yaml


def unknown_keys(config, schema: dict, root: dict | None = None, where: str = "") -> list[str]:
    """One line per key of `config` that `schema` does not allow (a closed mapping), with the valid keys."""
    root = schema if root is None else root
    ref = schema.get("$ref", "")
    if ref.startswith("#/"):  # local references only (`#/$defs/grid`)
        schema = root
        for part in ref[2:].split("/"):
            schema = schema[part]
    if isinstance(config, list) and isinstance(schema.get("items"), dict):  # a list of entries (external_models)
        return [p for i, item in enumerate(config) for p in unknown_keys(item, schema["items"], root, f"{where}[{i}]")]
    if not isinstance(config, dict):
        return []
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    problems = []
    for key, value in config.items():
        path = f"{where}.{key}" if where else str(key)
        if key in properties:
            problems += unknown_keys(value, properties[key], root, path)
        elif isinstance(extra, dict):  # a mapping of named entries (datasets, backbones, grids)
            problems += unknown_keys(value, extra, root, path)
        elif extra is False:
            close = difflib.get_close_matches(str(key), list(properties), n=1)
            hint = f", did you mean {close[0]}?" if close else ""
            problems.append(f"{path}: unknown key{hint} (valid keys: {', '.join(properties)})")
    return problems


def check_known_keys(config: dict, schema_path: str | os.PathLike) -> None:
    """Raise ValueError listing every unknown key of `config`, one per line (the form of common.smk's checks)."""
    with open(schema_path) as f:
        problems = unknown_keys(config, yaml.safe_load(f))
    if problems:
        raise ValueError("invalid config:\n  " + "\n  ".join(problems))
