# The config checks, paths and input functions shared by every stage; the study itself (grids -> runs, the
# methods, each run's definition) is repdrift.study, read here once.
import os
from pathlib import Path

from repdrift.study import (
    EXTERNAL_GRID,
    METHODS,
    POOLS,
    RUN,
    SIMILARITY_COLUMN,
    WHOLE_SPLIT,
    Study,
    knn_ece_metric,
    knn_metric,
    method_pattern,
    method_wildcard,
    methods_of,
    wiseft_method,
)

STUDY = Study(config)
RUN_DIR = f"results/runs/{RUN}"
KNN_DATASET = config["knn"]["dataset"]
PRETRAIN_DATASET = config["pretrain"]["dataset"]
# The runs.parquet metric of the configured CKA estimator (both are always measured and stored).
SIMILARITY_METRIC = SIMILARITY_COLUMN[config["cka"]["estimator"]]
# How the correlation fit discretises (repdrift.analysis.paper.FitRule), for the correlation, rulers and figures jobs.
FIT_RULE = {
    key: config["analysis"][key]
    for key in ("n_intervals", "outliers", "min_intervals", "min_interval_runs")
}
# Similarity against: forgetting and calibration on the natural domain (the paper's Fig. 5), and the target
# domain's calibration as an extra panel.
CORRELATION_METRICS = [
    knn_metric(config["knn"]["k"]),
    knn_ece_metric(config["knn"]["k"]),
    "ece",
]
WISEFT_METHODS = STUDY.run_methods("wiseft")
# The runs of external_models: run id -> (index in the list, entry) (rule import_external).
EXTERNAL_MODELS = STUDY.external_models()


wildcard_constraints:
    dataset=r"[A-Za-z0-9_.\-]+",
    backbone=r"[A-Za-z0-9_.\-]+",
    method=method_wildcard(),
    pool="|".join(POOLS),
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
    # Each adapter declares its options (its keyword arguments): a misspelt one is named here, not when its job runs.
    from repdrift.data import KINDS, options as adapter_options

    for name, entry in config["datasets"].items():
        if entry["kind"] not in KINDS:
            continue  # the schema names it
        valid = adapter_options(entry["kind"])
        for key in entry.get("options") or {}:
            if key not in valid:
                problems.append(
                    f"datasets.{name}.options.{key}: not an option of kind {entry['kind']} "
                    f"(options: {', '.join(valid) or 'none'})"
                )
    for key, name in (
        ("knn.dataset", KNN_DATASET),
        ("pretrain.dataset", PRETRAIN_DATASET),
    ):
        if name not in config["datasets"]:
            problems.append(f"{key}: '{name}' is not a key of `datasets`")
    wiseft = config["preserving"]["wiseft"]
    uses_wiseft = any("wiseft" in grid["methods"] for grid in config["grids"].values())
    if uses_wiseft and wiseft["verdict_alpha"] not in wiseft["alphas"]:
        problems.append(
            f"preserving.wiseft.verdict_alpha: {wiseft['verdict_alpha']} is not one of preserving.wiseft.alphas "
            f"{wiseft['alphas']}: the verdicts' candidate must be a run of the study"
        )
    # The methods are repdrift.study.METHODS; a derived one needs the runs it is made from in its grid.
    for grid_name, grid in config["grids"].items():
        for method in grid["methods"]:
            if method not in METHODS:
                problems.append(
                    f"grids.{grid_name}.methods: '{method}' is not a method (methods: {', '.join(METHODS)})"
                )
                continue
            missing = [m for m in METHODS[method].needs if m not in grid["methods"]]
            if missing:
                problems.append(
                    f"grids.{grid_name}.methods: {method} is made from the {' and '.join(missing)} runs of its "
                    f"seed ({METHODS[method].summary}); add {' and '.join(missing)}"
                )
    problems += _external_problems()
    for name in config["cka"]["dataset_samples"]:
        if name not in config["datasets"]:
            problems.append(
                f"cka.dataset_samples.{name}: '{name}' is not a key of `datasets` ({', '.join(config['datasets'])})"
            )
    # The smallest CKA sample the study measures on (a dataset's `all` is its whole test split: not bounded here).
    targets = {name for grid in config["grids"].values() for name in grid["datasets"]}
    smallest = min(
        ((STUDY.cka_samples(name), name) for name in targets & set(config["datasets"])),
        default=(WHOLE_SPLIT, None),
    )
    k = config["similarity"]["mutual_knn_k"]
    if "mutual_knn" in config["similarity"]["measures"] and k >= smallest[0]:
        where = (
            f"cka.dataset_samples.{smallest[1]}"
            if smallest[1] in config["cka"]["dataset_samples"]
            else "cka.samples"
        )
        problems.append(
            f"similarity.mutual_knn_k: {k} neighbours need more than that many images in the CKA sample "
            f"({smallest[1]}: {where} = {smallest[0]})"
        )
    grid = config["analysis"]["similarity_grid"]
    if grid not in config["grids"]:
        problems.append(
            f"analysis.similarity_grid: '{grid}' is not a key of `grids` ({', '.join(config['grids'])})"
        )
    else:
        # Its runs are averaged and fitted together per backbone: they must differ by seed only.
        for key, default in (
            ("datasets", None),
            ("methods", ["full"]),
            ("pools", ["cls"]),
        ):
            values = config["grids"][grid].get(key, default)
            if len(values) != 1:
                problems.append(
                    f"grids.{grid}.{key}: the similarity grid (analysis.similarity_grid) must have one {key[:-1]}, "
                    f"got {values}: its runs are averaged and fitted together per backbone"
                )
    if problems:
        raise ValueError("invalid config:\n  " + "\n  ".join(problems))


def _external_problems():
    """external_models: names that exist, a file format the backbone's library reads, one entry per run, a file
    that exists or that the study makes; `external` is no grid's name and no grid's method (its runs come from
    external_models only)."""
    problems = []
    if EXTERNAL_GRID in config["grids"]:
        problems.append(
            f"grids.{EXTERNAL_GRID}: the name of the external models' grid; name the grid otherwise"
        )
    for grid_name, grid in config["grids"].items():
        for method in grid["methods"]:
            if method in METHODS and METHODS[method].kind == "external":
                problems.append(
                    f"grids.{grid_name}.methods: {method} runs are listed under external_models, not in a grid"
                )
    made = {
        f"{RUN_DIR}/model.safetensors".format(**run.wildcards)
        for run in STUDY.runs.values()
    }
    seen = {}
    for index, entry in enumerate(config.get("external_models") or []):
        key = f"external_models[{index}]"
        for field, known in (("dataset", "datasets"), ("backbone", "backbones")):
            if entry[field] not in config[known]:
                problems.append(
                    f"{key}.{field}: '{entry[field]}' is not a key of `{known}`"
                )
        backbone = config["backbones"].get(entry["backbone"], {})
        if (
            entry["format"] in ("timm", "open_clip")
            and backbone.get("library", entry["format"]) != entry["format"]
        ):
            problems.append(
                f"{key}.format: a {entry['format']} file, but backbone '{entry['backbone']}' is a "
                f"{backbone['library']} model"
            )
        run = RUN.format(**{**entry, "method": "external"})
        if run in seen:
            problems.append(
                f"{key}: the same run as external_models[{seen[run]}] ({run}); give it another seed"
            )
        seen.setdefault(run, index)
        path = entry["path"]
        if (
            f"{RUN_DIR}/model.safetensors".format(**{**entry, "method": "external"})
            == path
        ):
            problems.append(f"{key}.path: {path} is the run's own output")
        elif path not in made and not Path(path).is_file():
            problems.append(
                f"{key}.path: no such file: {path} (neither a file nor a model.safetensors of a run of this study)"
            )
    return problems


_check_config()


RUNS = STUDY.runs
# In the config's order: the order of the paper tables' rows and columns.
BACKBONES_USED = STUDY.used("backbone")
POOLS_USED = STUDY.used("pool")
TARGETS_USED = STUDY.used("dataset")
# The runs whose fine-tune failed under their current definition: the study is built without them and names them.
FAILED = STUDY.failed()
# The runs the study's tables are built from.
DONE_RUNS = {run: info for run, info in RUNS.items() if run not in FAILED}


def run_files(name, kinds=None):
    """The file `name` of every run of the study, less the runs recorded as failed; with `kinds`, of the runs whose
    method is of one of those kinds (repdrift.study: trained, probe, derived) only."""
    return [f"results/runs/{run}/{name}" for run in done_runs(kinds)]


def done_runs(kinds=None):
    """The ids of DONE_RUNS, with `kinds` those whose method is of one of these kinds only (in DONE_RUNS' order)."""
    if kinds is None:
        return list(DONE_RUNS)
    of_kinds = {run.id for kind in kinds for run in STUDY.runs_of(kind)}
    return [run for run in DONE_RUNS if run in of_kinds]


# The runs with a weight_change.parquet: those whose backbone changed in the job that holds the model (rule finetune).
WEIGHT_CHANGE_KINDS = ("trained",)


def manifest(dataset):
    return f"results/data/{dataset}/manifest.parquet"


def weights_file(backbone):
    """The local weights file of a backbone: pre-trained by the demo, fetched from the Hub, or given."""
    from repdrift.models.weights import weights_path

    return weights_path(backbone, config["backbones"][backbone])


def pretrained_features(backbone, dataset):
    """The pre-trained backbone's feature file of `dataset`: the k-NN dataset's bank and queries, a target
    dataset's every layer on its CKA sample (what each run's trajectory is compared to).
    """
    return f"results/pretrained/{backbone}/features/{dataset}.h5"


def run_features(wildcards, dataset):
    """A fine-tuned model's features on `dataset`; a linear probe leaves the backbone as it was, so its features
    are the pre-trained model's. `wildcards`: a job's, or a dict of them."""
    wc = dict(wildcards.items())
    if wc["method"] == "linear":
        return pretrained_features(wc["backbone"], dataset)
    return f"{RUN_DIR}/features/{dataset}.h5".format(**wc)


def demo_input(wildcards):
    """The demo generator, for datasets that live inside the demo root."""
    root = Path(config["datasets"][wildcards.dataset]["root"]).resolve()
    demo_root = Path(config["demo"]["root"]).resolve()
    if config["demo"]["enabled"] and demo_root in (root, *root.parents):
        return config["demo"]["root"]
    return []


def attention_runs(backbone):
    """The fine-tuned runs, by pool, whose attention is drawn beside the pre-trained backbone's
    (analysis.attention; pools null = every pool the study has, or both, for the check below to name).
    """
    choice = config["analysis"]["attention"]
    runs = {
        pool: RUN.format(
            backbone=backbone,
            pool=pool,
            **{k: choice[k] for k in ("dataset", "method", "seed")},
        )
        for pool in choice["pools"] or ("cls", "mean")
    }
    if choice["pools"] is None:
        runs = {pool: run for pool, run in runs.items() if run in RUNS} or runs
    # A run recorded as failed is left out: its column says so (failed_attention_runs).
    return {
        pool: f"results/runs/{run}" for pool, run in runs.items() if run not in FAILED
    }


def failed_attention_runs(backbone):
    """The runs analysis.attention picks for `backbone` that are recorded as failed."""
    choice = config["analysis"]["attention"]
    picked = {"backbone": backbone, **{k: choice[k] for k in ("dataset", "method")}}
    return [
        run
        for run in FAILED
        if all(RUNS[run].wildcards[k] == v for k, v in picked.items())
        and int(RUNS[run].seed) == int(choice["seed"])
    ]


def _check_attention():
    """Some backbone must have the attention runs (a typo in analysis.attention is named before any job); a backbone
    without them (one added with a dataset of its own) gets no attention sheet (ATTENTION_BACKBONES).
    """
    missing = [
        run.removeprefix("results/runs/")
        for backbone in BACKBONES_USED
        for run in attention_runs(backbone).values()
        if run.removeprefix("results/runs/") not in RUNS
    ]
    if missing and not ATTENTION_BACKBONES:
        raise ValueError(
            f"invalid config:\n  analysis.attention: runs {', '.join(missing)} are not in any grid; pick a "
            "dataset, method, pools and seed that a backbone has"
        )


# The backbones whose attention sheet is drawn: those with every run analysis.attention picks for them.
ATTENTION_BACKBONES = [
    backbone
    for backbone in BACKBONES_USED
    if all(
        run.removeprefix("results/runs/") in RUNS
        for run in attention_runs(backbone).values()
    )
]
_check_attention()


def attention_models(backbone):
    return [f"{run}/model.safetensors" for run in attention_runs(backbone).values()]


def all_outputs():
    return [
        "results/tables/runs.parquet",
        "results/tables/trajectories.parquet",
        "results/tables/table1.md",
        "results/tables/table2.md",
        "results/analysis/similarity_sweep.csv",
        "results/findings.html",
        *FIGURES,
        *expand(
            "results/figures/attention/{backbone}.png", backbone=ATTENTION_BACKBONES
        ),
        *(TRADEOFF_OUTPUTS if PRESERVING_GRID or PEFT_GRID else []),
        "results/analysis/rulers.csv",
        *[
            f"results/figures/{n}.{e}"
            for n in ("agreement", "rulers")
            for e in ("html", "svg")
        ],
    ]


# The grid of the similarity-preserving methods (rule tradeoff), if the study has one.
PRESERVING_GRID = (
    config["analysis"]["preserving_grid"]
    if config["analysis"]["preserving_grid"] in config["grids"]
    else None
)
# The grid of the parameter-efficient methods beside Full, for the verdict against Biderman et al. (rule tradeoff).
PEFT_GRID = (
    config["analysis"]["peft_grid"]
    if config["analysis"]["peft_grid"] in config["grids"]
    else None
)
TRADEOFF_OUTPUTS = [
    "results/analysis/tradeoff.csv",
    "results/analysis/early_prediction.csv",
    *[
        f"results/figures/{n}.{e}"
        for n in ("tradeoff", "early_prediction", "change_rank")
        for e in ("html", "svg")
    ],
]


def knn_splits(dataset):
    """The splits whose final representations a feature file of `dataset` keeps: the k-NN bank (train) and
    queries (test) of the k-NN dataset, none of a target dataset (its CKA sample is kept instead).
    """
    return ["train", "test"] if dataset == KNN_DATASET else []


def reference_samples(dataset):
    """The CKA sample a pre-trained feature file of `dataset` keeps: a target dataset's (cka_samples), none of a
    dataset no run is fine-tuned on (the k-NN dataset)."""
    return STUDY.cka_samples(dataset) if dataset in TARGETS_USED else 0


# The report's figures (rule figures) and their report categories.
FIGURE_CATEGORIES = {
    "cka_trajectory": "Similarity trajectory",  # Fig. 4a: the similarity grid's trajectories
    "cka_heatmap": "Similarity trajectory",  # every layer's similarity per epoch
    "cka_distribution": "Similarity distribution",  # Fig. 1b: final similarity across seeds
    "cka_vs_score": "Similarity space",  # final similarity against the task score
    "similarity_space": "Similarity space",  # Fig. 1a: the runs in (A_X, S) and T_X
    "correlation": "Correlation",  # Fig. 5: interval means and the fitted line
    "knn_forgetting": "Forgetting",  # k-NN accuracy before and after fine-tuning
}
FIGURES = [
    f"results/figures/{name}.{ext}"
    for name in FIGURE_CATEGORIES
    for ext in ("html", "svg")
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


def external_entry(wildcards):
    """The `external_models` entry of a run (rule import_external), with its index in the list."""
    run = RUN.format(**dict(wildcards.items()))
    if run not in EXTERNAL_MODELS:
        raise ValueError(f"{run} is not a run of external_models")
    return EXTERNAL_MODELS[run]


def wiseft_files(name):
    """`name` of every WiSE-FT run derived from one LP-FT run (the wildcards are its)."""
    return [
        f"results/runs/{{dataset}}/{{backbone}}/{method}-{{pool}}/seed{{seed}}/{name}"
        for method in WISEFT_METHODS
    ]
