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
    "repdrift.measurement.measure",
    "repdrift.analysis.paper",
    "repdrift.analysis.tables",
    "repdrift.analysis.findings",
    "repdrift.report.plots",
    "repdrift.formats.features",
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
        "import repdrift.training.finetune, repdrift.measurement.extract, repdrift.report.attention\n"
        "import repdrift.models.pretrain, repdrift.models\n"
        "assert 'HF_HUB_OFFLINE' not in os.environ"
    )
    loaded = loaded_after(code)
    assert not loaded["huggingface_hub"] and not loaded["timm"], loaded


def _module_imports(path: Path, name: str) -> set[str]:
    """The modules `path` imports at module level (not inside functions), absolute names."""
    import ast

    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def test_the_documented_torch_modules_are_the_ones_that_import_torch():
    """docs/architecture.md ("Import cost") lists the package modules that import torch at module level: the list is
    checked against the code, following the package's own imports."""
    import re

    modules = {}
    for path in (SCRIPTS / "repdrift").rglob("*.py"):
        parts = path.relative_to(SCRIPTS).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = _module_imports(path, name)
    heavy = ("torch", "torchvision", "timm", "open_clip", "safetensors.torch")

    def imports_torch(name, seen=()):
        direct = any(imp == h or imp.startswith(h + ".") for imp in modules[name] for h in heavy)
        return direct or any(
            imports_torch(dep, (*seen, name)) for dep in modules[name] if dep in modules and dep not in seen
        )

    torch_modules = {name for name in modules if imports_torch(name)}
    doc = (SCRIPTS.parents[1] / "docs/architecture.md").read_text()
    sentence = re.search(r"Only\s+(.*?)\s+may\s+import\s+torch\s+at\s+module\s+level", doc, re.S).group(1)
    documented = set(re.findall(r"`(repdrift[\w.]*)`", sentence))
    # A package counts by its own modules: `repdrift.models` stands for repdrift.models.*.
    covered = {name for name in torch_modules if not any(name == d or name.startswith(d + ".") for d in documented)}
    assert covered == set(), f"import torch but are not in docs/architecture.md: {sorted(covered)}"
    unused = {d for d in documented if not any(n == d or n.startswith(d + ".") for n in torch_modules)}
    assert unused == set(), f"listed in docs/architecture.md but torch-free: {sorted(unused)}"


def test_the_measure_job_does_not_import_scipy_stats():
    # scipy.stats takes ~0.5 s to import: more than all of a demo run's measurements (repdrift.metrics.similarity).
    probe = "import sys, repdrift.measurement.measure; print('scipy.stats' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], cwd=SCRIPTS, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
