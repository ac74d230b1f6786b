"""config/paper.yaml's datasets as tiny fixtures in their real layouts, and a config file pointing it at them.

Used by tests/test_paper_config.py and benchmarks/bench_dag.py (`--configfile config/paper.yaml <overrides>`).
"""

from __future__ import annotations

from pathlib import Path

import data_fixtures as fx
import yaml

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "config/paper.yaml"


def paper_overrides(folder: Path) -> Path:
    """Build every dataset of config/paper.yaml under `folder` and write `folder/roots.yaml` pointing at them."""
    datasets = yaml.safe_load(PAPER.read_text())["datasets"]
    builders = {
        "isic2018": lambda root: fx.isic(root),
        "aptos2019": lambda root: fx.aptos(root),
        "imagenet": lambda root: fx.imagenet(root),
        # split "paper" reads the full release, whose test_WithoutLabel.txt carries labels
        **{kind: (lambda root, kind=kind: fx.medfm(root, kind, unlabelled_test=False)) for kind in fx.MEDFM},
    }
    overrides = {}
    for name, entry in datasets.items():
        root = folder / "data" / name
        builders[entry["kind"]](root)
        overrides[name] = {"root": str(root)}
        if entry["kind"] == "aptos2019":
            overrides[name]["options"] = {"split_file": str(root / "repdrift_split.csv")}
    path = folder / "roots.yaml"
    path.write_text(yaml.safe_dump({"datasets": overrides}))
    return path
