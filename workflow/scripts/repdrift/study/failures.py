"""Runs that failed in a way a re-run would repeat (a diverged fine-tune), recorded so the study can finish without
them and say which are missing.

Snakemake has no optional inputs: when a fine-tune fails, `--keep-going` finishes every job that does not need it,
but the study tables need every run. The failing job therefore leaves `failed.json` in its run folder (not an
output: Snakemake would delete it) with its message and the definition it failed under (backbone entry and
recipe). When the workflow is built again, a run whose record matches the current definition is left out of the
study and listed as missing; change the definition (e.g. `train.lr`) or delete the file and the run is tried again.
Torch-free: rules/common.smk reads it when the DAG is built.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from repdrift.formats.atomic import atomic_write

FILE_NAME = "failed.json"


def _normalised(definition: dict[str, Any]) -> Any:
    return json.loads(json.dumps(definition, sort_keys=True, default=str))


def record_failure(run_dir: str | Path, message: str, definition: dict[str, Any]) -> Path:
    """Record that the run in `run_dir` failed with `message` under `definition`."""
    path = Path(run_dir) / FILE_NAME
    content = json.dumps(dict(message=message, definition=_normalised(definition)), indent=1, sort_keys=True)
    atomic_write(path, lambda tmp: tmp.write_text(content))
    return path


def recorded_failure(run_dir: str | Path, definition: dict[str, Any]) -> str | None:
    """The recorded failure's message if the run failed under this same definition, else None."""
    path = Path(run_dir) / FILE_NAME
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        message, recorded = record["message"], record["definition"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return None  # unreadable: try the run again, which rewrites or clears it
    return message if recorded == _normalised(definition) else None


def clear_failure(run_dir: str | Path) -> None:
    """Forget a failure once the run has succeeded."""
    (Path(run_dir) / FILE_NAME).unlink(missing_ok=True)
