"""The study model: the methods, the grids' runs, what a run's outcome depends on, and the names of its metrics.

Torch-free and free of Snakemake: rules/common.smk builds one `Study` from the config while the workflow is read,
the rules read their runs, wildcard constraint and params from it, and training, the failure records (`failures`)
and the tests share its run definition; `config` names a config's unknown keys. Adding a method is one entry in
METHODS (and its training in repdrift.training.preserving, or its derivation in a rule of its own); nothing else
lists the methods. May import repdrift.formats and .errors only.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repdrift.formats.features import WHOLE_SPLIT

RUN = "{dataset}/{backbone}/{method}-{pool}/seed{seed}"
KEYS = ("dataset", "backbone", "method", "pool", "seed")
POOLS = ("cls", "mean")


@dataclass(frozen=True)
class Method:
    """A way of making a run. `kind`: `trained` (rule finetune), `probe` (rule linear_probe: the backbone stays the
    pre-trained one, so its features are the pre-trained model's), `derived` (made from other runs of its seed,
    `needs`, by a rule of its own) or `external` (a fine-tuned model read from a file of the config's
    `external_models`, never trained: rule import_external). `options`: its option names under `preserving.<name>`
    in the config. `family`: `paper` (Zu et al. 2025's own), `preserving` (similarity-preserving: the trade-off
    verdicts' candidates), `peft` (parameter-efficient: the verdict against Biderman et al. 2024) or `external`
    (models made elsewhere, which no verdict reads). `sweep`: (list option, value option) when a grid's method
    becomes one run per value of the list, named by the value (`sweep_method`): lora with ranks [4, 16] -> runs
    lora4 and lora16, each trained with its own `rank`."""

    name: str
    kind: str
    summary: str
    options: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    family: str = "preserving"
    sweep: tuple[str, str] | None = None


METHODS = {
    m.name: m
    for m in (
        Method("full", "trained", "every parameter fine-tuned from the pre-trained weights", family="paper"),
        Method("linear", "probe", "the pre-trained backbone frozen, a linear head trained", family="paper"),
        Method("scratch", "trained", "every parameter trained from a random initialisation", family="paper"),
        Method("l2sp", "trained", "Full with L2-SP's pull towards the pre-trained weights", ("alpha", "beta")),
        Method("lpft", "trained", "the Linear probe, then Full from its head at a smaller lr", ("lr_scale",)),
        Method("rift", "trained", "Full with a penalty on the rotation-aligned feature change", ("strength",)),
        Method("feature_cka", "trained", "Full with 1 - CKA to the pre-trained features as a penalty", ("strength",)),
        Method(
            "wiseft",
            "derived",
            "weight-space ensembles of the Linear probe and its LP-FT run, one run per a",
            ("alphas", "verdict_alpha"),
            needs=("linear", "lpft"),
            sweep=("alphas", "alpha"),
        ),
        Method(
            "lora",
            "trained",
            "LoRA adapters (peft) on every block's attention and MLP matrices and the head trained, one run per rank",
            ("ranks", "alpha_ratio", "dropout", "lr_scale"),
            family="peft",
            sweep=("ranks", "rank"),
        ),
        Method("bitfit", "trained", "the backbone's biases and the head trained", ("lr_scale",), family="peft"),
        Method(
            "partial",
            "trained",
            "the top blocks, the final norm and the head trained, the rest frozen",
            ("blocks", "lr_scale"),
            family="peft",
        ),
        Method(
            "external",
            "external",
            "a fine-tuned model read from a file (external_models), never trained",
            family="external",
        ),
    )
}
# The grid name of the external models' runs (grids.parquet, StudyRun.grids): no grid of the config may take it.
EXTERNAL_GRID = "external"
# The paper's own methods (Zu et al. 2025); the others go beyond it.
PAPER_METHODS = tuple(name for name, method in METHODS.items() if method.family == "paper")


def methods_of(kind: str) -> list[str]:
    """The registered methods of one kind, in registry order."""
    return [name for name, method in METHODS.items() if method.kind == kind]


def sweep_method(name: str, value: float) -> str:
    """The run method of one value of a swept method, in plain decimals: (wiseft, 0.5) -> wiseft0.5, (wiseft, 1.0) ->
    wiseft1, (wiseft, 1e-05) -> wiseft0.00001, (lora, 4) -> lora4."""
    return name + (f"{value:.10f}".rstrip("0").rstrip(".") or "0")


def wiseft_method(alpha: float) -> str:
    """The run method of WiSE-FT's a (`sweep_method`)."""
    return sweep_method("wiseft", alpha)


def base_method(run_method: str) -> str:
    """The registered method of a run's method: wiseft0.5 -> wiseft, lora4 -> lora, full -> full."""
    if run_method in METHODS:
        return run_method
    stem = run_method.rstrip("0123456789.")
    return stem if stem in METHODS and METHODS[stem].sweep else run_method


def family_of(run_method: str) -> str | None:
    """The family of a run's method (lora4 -> peft), None for an unregistered name."""
    method = METHODS.get(base_method(run_method))
    return method.family if method else None


def method_pattern(name: str) -> str:
    """The regex of a registered method's run methods: its name, with the value's suffix when it is swept."""
    return f"{name}[0-9.]+" if METHODS[name].sweep else name


def method_wildcard() -> str:
    """The `method` wildcard's pattern: every registered name, a swept method with its numeric suffix."""
    return "|".join(method_pattern(name) for name in METHODS)


# The metrics of runs.parquet whose names carry a parameter, built here only.
def knn_metric(k: int) -> str:
    """k-NN accuracy on the natural domain (forgetting)."""
    return f"knn@{k}"


def knn_ece_metric(k: int) -> str:
    """ECE of the k-NN classifier on the natural domain."""
    return f"knn_ece@{k}"


def mutual_knn_metric(k: int) -> str:
    """The mutual k-NN similarity of k neighbours."""
    return f"mutual_knn@{k}"


# runs.parquet's column of each CKA estimator (both are always measured and stored).
SIMILARITY_COLUMN = {"biased": "cka", "debiased": "cka_debiased"}


@dataclass(frozen=True)
class StudyRun:
    """One run: its wildcards (values as the config gives them: the seed an int) and the grids that ask for it."""

    wildcards: dict[str, Any]
    grids: tuple[str, ...]

    @property
    def id(self) -> str:
        return RUN.format(**self.wildcards)

    def __getattr__(self, key: str) -> Any:  # run.dataset, run.method, ...
        if key in KEYS:
            return self.wildcards[key]
        raise AttributeError(key)


def run_definition(backbone: dict, recipe: dict, options: dict) -> dict[str, Any]:
    """What a fine-tune's outcome depends on beyond its wildcards: the backbone's entry (with its name), the recipe
    and the method's options. A failure is recorded under it (repdrift.study.failures) and not retried while it
    holds."""
    return dict(backbone=backbone, recipe=recipe, options=options)


class Study:
    """The config's study: its runs and each run's recipe, options and definition."""

    def __init__(self, config: dict):
        self.config = config
        self.runs = self._runs()

    # The recipe: train: less what does not change a run's result (how often it checkpoints) and the Linear probes'
    # own entry, which only their recipe reads.
    @property
    def recipe(self) -> dict:
        return {k: v for k, v in self.config["train"].items() if k not in ("checkpoint_minutes", "linear_probe")}

    def run_recipe(self, method: str) -> dict:
        """A run's recipe: the study's, with the Linear probes' own epochs and lr where train.linear_probe sets
        them (null = train's). Every other method's recipe never changes with that entry."""
        if method != "linear":
            return self.recipe
        own = self.config["train"]["linear_probe"]
        return {**self.recipe, **{k: v for k, v in own.items() if v is not None}}

    def method_options(self, method: str) -> dict:
        """The options a run of `method` (a run method: lora4) trains with: its `preserving` entry, a swept method's
        list replaced by the run's value (lora4: rank 4 instead of ranks, so another rank's run is not changed by
        adding one); LP-FT's probe is the Linear probes' recipe (epochs and lr), so that it is the very run the
        Linear run of its seed is."""
        base = base_method(method)
        options = dict(self.config["preserving"].get(base, {}))
        sweep = METHODS[base].sweep if base in METHODS else None
        if sweep is not None and base != method:
            values, value = sweep
            options.pop(values, None)
            options[value] = next(v for v in self.config["preserving"][base][values] if sweep_method(base, v) == method)
        if method == "lpft":
            probe = self.run_recipe("linear")
            options |= dict(probe_epochs=probe["epochs"], probe_lr=probe["lr"])
        return options

    def backbone(self, name: str) -> dict:
        """A backbone's config entry, with its name."""
        return {**self.config["backbones"][name], "name": name}

    def definition(self, run: StudyRun) -> dict:
        return run_definition(self.backbone(run.backbone), self.run_recipe(run.method), self.method_options(run.method))

    def cka_samples(self, dataset: str) -> int:
        """The CKA sample size of a dataset's runs and reference: cka.dataset_samples, else cka.samples (`all`:
        WHOLE_SPLIT)."""
        cka = self.config["cka"]
        n = cka["dataset_samples"].get(dataset, cka["samples"])
        return WHOLE_SPLIT if n == "all" else n

    def run_methods(self, method: str) -> list[str]:
        """The runs' methods a grid's method becomes: a swept one one per value (WiSE-FT per preserving.wiseft.alphas,
        LoRA per preserving.lora.ranks), others themselves."""
        sweep = METHODS[method].sweep if method in METHODS else None
        if sweep is not None:
            return [sweep_method(method, v) for v in self.config["preserving"][method][sweep[0]]]
        return [method]

    def _runs(self) -> dict[str, StudyRun]:
        grids_of: dict[str, list[str]] = {}
        wildcards: dict[str, dict[str, str]] = {}
        for grid_name, grid in self.config["grids"].items():
            methods = [m for method in grid["methods"] for m in self.run_methods(method)]
            for values in itertools.product(grid["datasets"], grid["backbones"], methods, grid["pools"], grid["seeds"]):
                wc = dict(zip(KEYS, values))
                run = RUN.format(**wc)
                wildcards.setdefault(run, wc)
                grids_of.setdefault(run, []).append(grid_name)
        for run, (_, entry) in self.external_models().items():
            wildcards.setdefault(run, {key: "external" if key == "method" else entry[key] for key in KEYS})
            grids_of.setdefault(run, []).append(EXTERNAL_GRID)
        return {run: StudyRun(wildcards[run], tuple(grids_of[run])) for run in wildcards}

    def external_models(self) -> dict[str, tuple[int, dict]]:
        """The runs of the config's `external_models`: run id -> (its index in the list, its entry). Two entries
        of one run id are the config check's to name (common.smk); the first one counts here."""
        models: dict[str, tuple[int, dict]] = {}
        for index, entry in enumerate(self.config.get("external_models") or []):
            run = RUN.format(**{**entry, "method": "external"})
            models.setdefault(run, (index, entry))
        return models

    def runs_of(self, kind: str) -> list[StudyRun]:
        """The runs of the methods of one kind (trained, probe, derived)."""
        return [r for r in self.runs.values() if METHODS[base_method(r.method)].kind == kind]

    def used(self, key: str) -> list[str]:
        """The backbones, datasets or pools the runs use, in the config's order (the paper tables' order)."""
        order = {"backbone": self.config["backbones"], "dataset": self.config["datasets"], "pool": POOLS}[key]
        present = {r.wildcards[key] for r in self.runs.values()}
        return [name for name in order if name in present]

    def sources(self, run: StudyRun) -> list[str]:
        """The runs a derived run is made from (its method's `needs`, same seed); none for the others."""
        needs = METHODS[base_method(run.method)].needs
        return [RUN.format(**{**run.wildcards, "method": m}) for m in needs]

    def failed(self, results: str | Path = "results/runs") -> dict[str, str]:
        """The runs whose fine-tune failed under their current definition (repdrift.study.failures), with the message,
        and the derived runs that lost a source to such a failure."""
        from repdrift.study.failures import recorded_failure

        failed = {}
        for run_id, run in self.runs.items():
            if METHODS[base_method(run.method)].kind != "derived":
                message = recorded_failure(Path(results) / run_id, self.definition(run))
                if message is not None:
                    failed[run_id] = message
        for run_id, run in self.runs.items():
            lost = [source for source in self.sources(run) if source in failed]
            if lost:
                failed[run_id] = f"derived from {' and '.join(lost)}, which failed"
        return failed
