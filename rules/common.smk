# The run grid, paths and input functions shared by every stage.
import itertools
import os
from pathlib import Path

RUN = "{dataset}/{backbone}/{method}-{pool}/seed{seed}"
RUN_DIR = f"results/runs/{RUN}"
KNN_DATASET = config["knn"]["dataset"]
PRETRAIN_DATASET = config["pretrain"]["dataset"]


wildcard_constraints:
    dataset=r"[A-Za-z0-9_.\-]+",
    backbone=r"[A-Za-z0-9_.\-]+",
    method="full|linear|scratch",
    pool="cls|mean",
    seed=r"\d+",


def _check_config():
    """Names used by grids and by knn/pretrain must exist: say which key is wrong, not a KeyError later."""
    problems = []
    for grid_name, grid in config["grids"].items():
        for key, known in (
            ("backbones", config["backbones"]),
            ("datasets", config["datasets"]),
        ):
            for name in grid[key]:
                if name not in known:
                    problems.append(
                        f"grids.{grid_name}.{key}: '{name}' is not a key of `{key}`"
                    )
    for key, name in (
        ("knn.dataset", KNN_DATASET),
        ("pretrain.dataset", PRETRAIN_DATASET),
    ):
        if name not in config["datasets"]:
            problems.append(f"{key}: '{name}' is not a key of `datasets`")
    if problems:
        raise ValueError("invalid config:\n  " + "\n  ".join(problems))


_check_config()


def study_runs():
    """Every run of every grid, once, as dicts of wildcards, plus the grid each came from."""
    runs = {}
    for grid_name, grid in config["grids"].items():
        for values in itertools.product(
            grid["datasets"],
            grid["backbones"],
            grid["methods"],
            grid["pools"],
            grid["seeds"],
        ):
            run = dict(zip(("dataset", "backbone", "method", "pool", "seed"), values))
            runs.setdefault(RUN.format(**run), {"wildcards": run, "grids": []})[
                "grids"
            ].append(grid_name)
    return runs


RUNS = study_runs()
BACKBONES_USED = sorted({r["wildcards"]["backbone"] for r in RUNS.values()})
TARGETS_USED = sorted({r["wildcards"]["dataset"] for r in RUNS.values()})


def run_files(name):
    """The file `name` of every run of the study."""
    return [f"results/runs/{run}/{name}" for run in RUNS]


def manifest(dataset):
    return f"results/data/{dataset}/manifest.parquet"


def backbone_cfg(backbone):
    """The backbone's config entry, named by its config key."""
    return {**config["backbones"][backbone], "name": backbone}


def weights_file(backbone):
    """The local weights file of a backbone: pre-trained by the demo, fetched from the Hub, or given."""
    from repdrift.weights import weights_path

    return weights_path(backbone, config["backbones"][backbone])


def pretrained_features(backbone, dataset):
    return f"results/pretrained/{backbone}/features/{dataset}.h5"


def run_features(wildcards, dataset):
    """A linear probe leaves the backbone as it was: its features are the pre-trained model's."""
    if wildcards.method == "linear":
        return pretrained_features(wildcards.backbone, dataset)
    return f"{RUN_DIR}/features/{dataset}.h5".format(**wildcards)


def demo_input(wildcards):
    """The demo generator, for datasets that live inside the demo root."""
    root = Path(config["datasets"][wildcards.dataset]["root"]).resolve()
    demo_root = Path(config["demo"]["root"]).resolve()
    if config["demo"]["enabled"] and demo_root in (root, *root.parents):
        return config["demo"]["root"]
    return []


def attention_run(backbone):
    """The fine-tuned run whose attention is drawn beside the pre-trained backbone's (analysis.attention)."""
    choice = config["analysis"]["attention"]
    run = RUN.format(
        backbone=backbone,
        **{k: choice[k] for k in ("dataset", "method", "pool", "seed")},
    )
    if run not in RUNS:
        raise ValueError(
            f"analysis.attention: run {run} is not in any grid; pick a dataset/method/pool/seed that is"
        )
    return f"results/runs/{run}"


def attention_model(backbone):
    return f"{attention_run(backbone)}/model.safetensors"


def all_outputs():
    return [
        "results/tables/runs.parquet",
        "results/tables/trajectories.parquet",
        "results/tables/table1.md",
        "results/tables/table2.md",
        "results/analysis/similarity_sweep.csv",
        "results/findings.html",
        *FIGURES,
        *expand("results/figures/attention/{backbone}.png", backbone=BACKBONES_USED),
    ]


def feature_splits(dataset):
    """The k-NN dataset needs its bank (train) and queries (test); a target dataset its test split."""
    return ["train", "test"] if dataset == KNN_DATASET else ["test"]


FIGURE_NAMES = (
    "cka_trajectory",
    "cka_heatmap",
    "cka_distribution",
    "cka_vs_score",
    "similarity_space",
    "correlation",
    "knn_forgetting",
)
FIGURES = [
    f"results/figures/{name}.{ext}" for name in FIGURE_NAMES for ext in ("html", "svg")
]


def figure_outputs(name, category):
    """HTML (interactive) and SVG (static) for the report, captioned by a file the figure's job writes.

    The caption path is absolute: Snakemake reads captions relative to the rules folder, and this one is a result.
    """
    caption = f"results/figures/{name}.rst"
    outputs = {
        ext: report(
            f"results/figures/{name}.{ext}",
            caption=os.path.abspath(caption),
            category=category,
            labels={"figure": name, "format": label},
        )
        for ext, label in (("html", "interactive"), ("svg", "static"))
    }
    return {**outputs, "caption": caption}
