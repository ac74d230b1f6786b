"""Each job imports only what it needs: CPU rules never load torch, timm or open_clip; `build_backbone` loads
timm only for a timm backbone, open_clip only for an open_clip one, and the pre-training code never.

Every check runs in a fresh interpreter, since this test session has long imported everything.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "workflow" / "scripts"
HEAVY = ("torch", "timm", "open_clip", "repdrift.models.pretrain", "huggingface_hub")
# The torch-free modules behind the CPU rules (data preparation, metrics, tables, figures, findings).
CPU_MODULES = (
    "repdrift.measure",
    "repdrift.analysis",
    "repdrift.tables",
    "repdrift.findings",
    "repdrift.plots",
    "repdrift.features",
    "repdrift.metrics",
)
TIMM_DEMO = {
    "library": "timm",
    "arch": "vit_base_patch16_224",
    "paradigm": "supervised",
    "img_size": 32,
    "model_kwargs": {"patch_size": 4, "embed_dim": 64, "depth": 4, "num_heads": 2},
}


def loaded_after(code: str) -> dict[str, bool]:
    """Run `code` in a fresh interpreter; which of HEAVY it left in sys.modules."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=SCRIPTS, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", CPU_MODULES)
def test_cpu_modules_do_not_import_torch(module):
    loaded = loaded_after(f"import {module}")
    assert not any(loaded[m] for m in ("torch", "timm", "open_clip")), loaded


def test_build_backbone_import_is_lazy():
    loaded = loaded_after("from repdrift.models import build_backbone")
    assert not loaded["timm"] and not loaded["open_clip"] and not loaded["repdrift.models.pretrain"], loaded


def test_timm_backbone_does_not_import_open_clip():
    loaded = loaded_after(f"from repdrift.models import build_backbone\nbuild_backbone({TIMM_DEMO!r}, None)")
    assert loaded["timm"], loaded
    assert not loaded["open_clip"] and not loaded["repdrift.models.pretrain"], loaded


def test_importing_the_job_modules_sets_nothing_and_loads_no_hub_client():
    # huggingface_hub reads HF_HUB_OFFLINE when imported: repdrift.rule.run sets it first, so no job module may
    # import the Hub client (or set the variable) at import time.
    code = (
        "import os\nos.environ.pop('HF_HUB_OFFLINE', None)\n"
        "import repdrift.training, repdrift.extract, repdrift.attention, repdrift.pretraining, repdrift.models\n"
        "assert 'HF_HUB_OFFLINE' not in os.environ"
    )
    loaded = loaded_after(code)
    assert not loaded["huggingface_hub"] and not loaded["timm"], loaded
