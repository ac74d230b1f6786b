# The run grid, paths and input functions shared by every stage.
import itertools
import os
import re
from pathlib import Path

from repdrift.features import WHOLE_SPLIT

RUN = "{dataset}/{backbone}/{method}-{pool}/seed{seed}"
RUN_DIR = f"results/runs/{RUN}"
KNN_DATASET = config["knn"]["dataset"]
PRETRAIN_DATASET = config["pretrain"]["dataset"]
# The runs.parquet metric of the configured CKA estimator (both are always measured and stored).
SIMILARITY_METRIC = {"biased": "cka", "debiased": "cka_debiased"}[
    config["cka"]["estimator"]
]
# The fine-tuning recipe; how often it checkpoints and how runs share jobs do not change the result. The Linear
# probes' own epochs and lr (train.linear_probe) are theirs and LP-FT's probe's: run_recipe, method_options.
RECIPE = {
    k: v
    for k, v in config["train"].items()
    if k not in ("checkpoint_minutes", "runs_per_job", "linear_probe")
}


def run_recipe(method):
    """The recipe a run of `method` trains with: RECIPE, with a Linear probe's own epochs and lr where
    train.linear_probe sets them (null = RECIPE's). Unset, a Linear run's recipe is RECIPE itself, so its params,
    failure record and checkpoint fingerprint stay as they were; every other method's never change with it.
    """
    if method != "linear":
        return RECIPE
    own = config["train"]["linear_probe"]
    return {**RECIPE, **{k: v for k, v in own.items() if v is not None}}


def cka_samples(dataset):
    """The CKA sample size of `dataset`'s runs and reference: cka.dataset_samples, else cka.samples; `all` is
    repdrift.features.WHOLE_SPLIT, more than any test split has (features.cka_sample then takes all of it).
    """
    n = config["cka"]["dataset_samples"].get(dataset, config["cka"]["samples"])
    return WHOLE_SPLIT if n == "all" else n


# How the correlation fit discretises (repdrift.analysis.FitRule), for the correlation, rulers and figures jobs.
FIT_RULE = {
    key: config["analysis"][key]
    for key in ("n_intervals", "outliers", "min_intervals", "min_interval_runs")
}
# Similarity against: forgetting and calibration on the natural domain (the paper's Fig. 5), and the target
# domain's calibration as an extra panel.
CORRELATION_METRICS = [
    f"knn@{config['knn']['k']}",
    f"knn_ece@{config['knn']['k']}",
    "ece",
]


# Trained by rule finetune (linear by linear_probe); WiSE-FT's runs are derived by rule wiseft from the Linear and
# LP-FT runs of their seed.
TRAINED_METHODS = ["full", "scratch", "l2sp", "lpft", "rift", "feature_cka"]


def wiseft_method(alpha):
    """The run's method of WiSE-FT's a, in plain decimals: 0.5 -> wiseft0.5, 1.0 -> wiseft1, 1e-05 -> wiseft0.00001."""
    return "wiseft" + (f"{alpha:.10f}".rstrip("0").rstrip(".") or "0")


WISEFT_METHODS = [wiseft_method(a) for a in config["preserving"]["wiseft"]["alphas"]]


wildcard_constraints:
    dataset=r"[A-Za-z0-9_.\-]+",
    backbone=r"[A-Za-z0-9_.\-]+",
    method=r"full|linear|scratch|l2sp|lpft|rift|feature_cka|wiseft[0-9.]+",
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
    for grid_name, grid in config["grids"].items():
        missing = [m for m in ("linear", "lpft") if m not in grid["methods"]]
        if "wiseft" in grid["methods"] and missing:
            problems.append(
                f"grids.{grid_name}.methods: wiseft interpolates from each Linear probe (theta0) to the LP-FT run "
                f"started from it (theta1) of the grid; add {' and '.join(missing)}"
            )
    for name in config["cka"]["dataset_samples"]:
        if name not in config["datasets"]:
            problems.append(
                f"cka.dataset_samples.{name}: '{name}' is not a key of `datasets` ({', '.join(config['datasets'])})"
            )
    # The smallest CKA sample the study measures on (a dataset's `all` is its whole test split: not bounded here).
    targets = {name for grid in config["grids"].values() for name in grid["datasets"]}
    smallest = min(
        ((cka_samples(name), name) for name in targets & set(config["datasets"])),
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


_check_config()


def study_runs():
    """Every run of every grid, once, as dicts of wildcards, plus the grid each came from."""
    runs = {}
    for grid_name, grid in config["grids"].items():
        methods = [
            m
            for method in grid["methods"]
            for m in (WISEFT_METHODS if method == "wiseft" else [method])
        ]
        for values in itertools.product(
            grid["datasets"],
            grid["backbones"],
            methods,
            grid["pools"],
            grid["seeds"],
        ):
            run = dict(zip(("dataset", "backbone", "method", "pool", "seed"), values))
            runs.setdefault(RUN.format(**run), {"wildcards": run, "grids": []})[
                "grids"
            ].append(grid_name)
    return runs


RUNS = study_runs()


# In the config's order: the order of the paper tables' rows and columns.
BACKBONES_USED = [
    b
    for b in config["backbones"]
    if any(r["wildcards"]["backbone"] == b for r in RUNS.values())
]
POOLS_USED = [
    p
    for p in ("cls", "mean")
    if any(r["wildcards"]["pool"] == p for r in RUNS.values())
]
TARGETS_USED = [
    d
    for d in config["datasets"]
    if any(r["wildcards"]["dataset"] == d for r in RUNS.values())
]


def run_files(name):
    """The file `name` of every run of the study, less the runs recorded as failed."""
    return [f"results/runs/{run}/{name}" for run in DONE_RUNS]


def manifest(dataset):
    return f"results/data/{dataset}/manifest.parquet"


def backbone_cfg(backbone):
    """The backbone's config entry, named by its config key."""
    return {**config["backbones"][backbone], "name": backbone}


def method_options(method):
    """The options a run of `method` trains with: its `preserving` entry; LP-FT's probe is the Linear probes' recipe
    (epochs and lr), so that it is the very run the Linear run of its seed is (WiSE-FT starts from that run).
    """
    options = dict(config["preserving"].get(method, {}))
    if method == "lpft":
        probe = run_recipe("linear")
        options |= dict(probe_epochs=probe["epochs"], probe_lr=probe["lr"])
    return options


def run_definition(backbone, method):
    """What a fine-tune's outcome depends on beyond its wildcards: a failure recorded under it is not retried."""
    return dict(
        backbone=backbone_cfg(backbone),
        recipe=run_recipe(method),
        options=method_options(method),
    )


def recorded_failures():
    """The runs whose fine-tune failed under the current definition (repdrift.failures), with the message: the
    study is built without them and names them as missing."""
    from repdrift.failures import recorded_failure

    failed = {}
    for run, info in RUNS.items():
        wc = info["wildcards"]
        message = recorded_failure(
            f"results/runs/{run}", run_definition(wc["backbone"], wc["method"])
        )
        if message is not None:
            failed[run] = message
    # A WiSE-FT run interpolates from the Linear run to the LP-FT run of its seed: without them, it is missing too.
    for run, info in RUNS.items():
        wc = info["wildcards"]
        ends = [RUN.format(**{**wc, "method": m}) for m in ("linear", "lpft")]
        lost = [end for end in ends if end in failed]
        if wc["method"].startswith("wiseft") and lost:
            failed[run] = f"derived from {' and '.join(lost)}, which failed"
    return failed


FAILED = recorded_failures()
# The runs the study's tables are built from.
DONE_RUNS = {run: info for run, info in RUNS.items() if run not in FAILED}


def batches(prefix, runs, key):
    """train.runs_per_job > 1: `runs` (wildcard dicts) grouped by the wildcards named in `key`, each group in
    (dataset, seed) order and cut into chunks of that size. A job per chunk of two or more, by a generated rule
    without wildcards, which Snakemake prefers to the one-run rule that would otherwise take the run. Chunks are cut
    from every run of the study and the failed ones (FAILED) dropped after: a failure changes its own chunk only.
    Returns [(name "<prefix>_batch_<key values>_<n>", the key's wildcards, [each run's wildcards, its id as "run"])].
    """
    size = config["train"]["runs_per_job"]
    groups = {}
    for wc in runs:
        groups.setdefault(tuple(wc[k] for k in key), []).append(wc)
    found, names = [], set()
    for values, group in sorted(groups.items()):
        group = sorted(group, key=lambda wc: (wc["dataset"], int(wc["seed"])))
        chunks = [group[i : i + size] for i in range(0, len(group), size)]
        for number, chunk in enumerate(chunks, start=1):
            members = [{**wc, "run": RUN.format(**wc)} for wc in chunk]
            members = [m for m in members if m["run"] not in FAILED]
            if len(members) > 1:
                name = "_".join([prefix, "batch", *values, str(number)])
                name = re.sub(r"\W", "_", name)  # vit-b and vit_b would meet here
                while name in names:
                    name += "_"
                names.add(name)
                found.append((name, dict(zip(key, values)), members))
    return found


STUDY_WILDCARDS = [info["wildcards"] for info in RUNS.values()]
GROUP = ("backbone", "method", "pool")
# The runs rules finetune and linear_probe train, a job per chunk (finetune.smk).
TRAINING_BATCHES = batches(
    "finetune", [wc for wc in STUDY_WILDCARDS if wc["method"] in TRAINED_METHODS], GROUP
) + batches(
    "linear_probe", [wc for wc in STUDY_WILDCARDS if wc["method"] == "linear"], GROUP
)
# The LP-FT runs rule wiseft derives from (with their Linear runs), a job per chunk (preserving.smk); their
# wildcards are the LP-FT run's.
WISEFT_BATCHES = batches(
    "wiseft",
    [
        {**wc, "method": "lpft"}
        for wc in STUDY_WILDCARDS
        if WISEFT_METHODS and wc["method"] == WISEFT_METHODS[0]  # one per LP-FT run
    ],
    ("backbone", "pool"),
)
# Every run's measurements, a job per chunk (metrics.smk).
MEASURE_BATCHES = batches("measure", STUDY_WILDCARDS, GROUP)


def weights_file(backbone):
    """The local weights file of a backbone: pre-trained by the demo, fetched from the Hub, or given."""
    from repdrift.weights import weights_path

    return weights_path(backbone, config["backbones"][backbone])


def pretrained_features(backbone, dataset):
    return f"results/pretrained/{backbone}/features/{dataset}.h5"


def cka_reference(backbone, dataset):
    """The pre-trained backbone's every layer on `dataset`'s CKA sample: what each run's trajectory is compared to."""
    return f"results/pretrained/{backbone}/cka_reference/{dataset}.h5"


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
        if all(RUNS[run]["wildcards"][k] == v for k, v in picked.items())
        and int(RUNS[run]["wildcards"]["seed"]) == int(choice["seed"])
    ]


def _check_attention():
    """Every backbone's attention runs must be runs of the study: said before any job, not when the DAG is built."""
    missing = [
        run.removeprefix("results/runs/")
        for backbone in BACKBONES_USED
        for run in attention_runs(backbone).values()
        if run.removeprefix("results/runs/") not in RUNS
    ]
    if missing:
        raise ValueError(
            f"invalid config:\n  analysis.attention: runs {', '.join(missing)} are not in any grid; pick a "
            "dataset, method, pools and seed that every backbone has"
        )


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
        *expand("results/figures/attention/{backbone}.png", backbone=BACKBONES_USED),
        *(TRADEOFF_OUTPUTS if PRESERVING_GRID else []),
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
TRADEOFF_OUTPUTS = [
    "results/analysis/tradeoff.csv",
    "results/analysis/early_prediction.csv",
    *[
        f"results/figures/{n}.{e}"
        for n in ("tradeoff", "early_prediction")
        for e in ("html", "svg")
    ],
]


def knn_splits(dataset):
    """The splits whose final representations a feature file of `dataset` keeps: the k-NN bank (train) and
    queries (test) of the k-NN dataset, none of a target dataset (its CKA sample is kept instead).
    """
    return ["train", "test"] if dataset == KNN_DATASET else []


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


def wiseft_files(name):
    """`name` of every WiSE-FT run derived from one LP-FT run (the wildcards are its)."""
    return [
        f"results/runs/{{dataset}}/{{backbone}}/{method}-{{pool}}/seed{{seed}}/{name}"
        for method in WISEFT_METHODS
    ]
