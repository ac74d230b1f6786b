"""Table 1 and Table 2 against small runs frames worked out by hand.

The key case: full/vit/isic has CLS seeds 0..3 (0.80, 0.82, 0.84, 0.86; mean 0.83) but a mean-pool partner for
seed 0 only (0.81). The printed cell must be the paired seed's CLS 0.80 with 0.81 - 0.80 = +1.00 points and its one
seed, not the 4-seed mean 0.83 beside it (that goes to a note).
"""

import runpy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from repdrift.analysis.tables import dataset_info, html_table, markdown, size_label, table1, table2, table_notes
from repdrift.data.manifest import make_dataset, write_dataset

SCRIPT = Path(__file__).resolve().parents[1] / "workflow/scripts/paper_tables.py"
# Given (config) order, deliberately not alphabetical.
DATASETS = {
    "isic": {"metric": "Acc", "train_size": 10015},
    "aptos": {"metric": "Acc", "train_size": 2930},
    "chest": {"metric": "mAP", "train_size": 366},
}
BACKBONES = ["vit", "dinov2"]
SCHEMA = {
    "run": pl.Utf8,
    "dataset": pl.Utf8,
    "backbone": pl.Utf8,
    "method": pl.Utf8,
    "pool": pl.Utf8,
    "seed": pl.Int64,
    "metric": pl.Utf8,
    "layer": pl.Int64,
    "value": pl.Float64,
}


def _runs(rows: list[tuple]) -> pl.DataFrame:
    """rows: (dataset, backbone, method, pool, seed, metric, value)."""
    data = [(f"{d}/{b}/{m}-{p}/seed{s}", d, b, m, p, s, metric, None, v) for d, b, m, p, s, metric, v in rows]
    return pl.DataFrame(data, schema=SCHEMA, orient="row")


# Listed scratch-first and dinov2-first so that input order cannot pass for the table's order.
SCORES = [
    ("isic", "vit", "scratch", "cls", 0, 0.6783),
    ("isic", "vit", "scratch", "mean", 0, 0.70),  # Scratch: no difference printed
    ("isic", "dinov2", "full", "cls", 0, 0.50),
    ("isic", "dinov2", "full", "cls", 1, 0.60),
    ("isic", "dinov2", "full", "mean", 0, 0.55),
    ("isic", "dinov2", "full", "mean", 1, 0.70),
    ("isic", "dinov2", "full", "mean", 2, 0.90),  # no CLS partner: left out of the difference
    ("aptos", "dinov2", "linear", "cls", 0, 0.60),
    ("aptos", "dinov2", "linear", "mean", 0, 0.60),
    *[("isic", "vit", "full", "cls", s, v) for s, v in enumerate([0.80, 0.82, 0.84, 0.86])],
    ("isic", "vit", "full", "mean", 0, 0.81),
    ("aptos", "vit", "full", "cls", 0, 0.7512),
    ("aptos", "vit", "full", "mean", 0, 0.70),
    ("chest", "vit", "full", "mean", 0, 0.20),  # mean-pool only
    ("other", "vit", "full", "cls", 0, 0.99),  # dataset not asked for
    ("isic", "resnet", "full", "cls", 0, 0.99),  # backbone not asked for
]
RUNS = _runs(
    [(d, b, m, p, s, "score", v) for d, b, m, p, s, v in SCORES]
    + [(d, b, m, p, s, "accuracy", 0.123) for d, b, m, p, s, _ in SCORES]  # another metric: must be ignored
)
HEADERS = ["isic Acc (n=10k)", "aptos Acc (n=2.9k)", "chest mAP (n=366)"]


@pytest.mark.parametrize(
    ("n", "label"),
    # The paper's own: ISIC 10,015 -> 10k, APTOS 2,930 -> 2.9k, chest 2,140 -> 2.1k, colon 5,654 -> 5.6k (truncated,
    # not rounded), endo 1,810 -> 1.8k.
    [
        (366, "366"),
        (999, "999"),
        (1000, "1k"),
        (1849, "1.8k"),
        (2930, "2.9k"),
        (2950, "2.9k"),
        (5654, "5.6k"),
        (2140, "2.1k"),
        (1810, "1.8k"),
        (10015, "10k"),
        (125_000, "120k"),
        (1_281_167, "1.2M"),
    ],
)
def test_size_label(n, label):
    assert size_label(n) == label


def test_table1_display():
    display, _ = table1(RUNS, DATASETS, BACKBONES)
    assert display.columns == ["method", "backbone", *HEADERS]
    assert display.rows() == [
        ("Full", "vit", "80.00 (+1.00; 1 seed)", "75.12 (-5.12; 1 seed)", "20.00 (mean-patch only)"),
        ("Full", "dinov2", "55.00 (+7.50; 2 seeds)", "", ""),
        ("Linear", "dinov2", "", "60.00 (+0.00; 1 seed)", ""),
        ("Scratch", "vit", "67.83", "", ""),
    ]


def test_table1_difference_uses_paired_seeds_only():
    display, numbers = table1(RUNS, DATASETS, BACKBONES)
    cell = numbers.filter(method="full", backbone="vit", dataset="isic").row(0, named=True)
    assert cell["cls"] == pytest.approx(0.83) and cell["cls_seeds"] == 4
    assert cell["mean_minus_cls"] == pytest.approx(0.01)  # 0.81 - 0.80, not 0.81 - 0.83
    assert cell["paired_seeds"] == 1 and cell["cls_paired"] == pytest.approx(0.80)
    assert display["isic Acc (n=10k)"][0] == "80.00 (+1.00; 1 seed)"


def test_table1_numbers():
    _, numbers = table1(RUNS, DATASETS, BACKBONES)
    assert numbers.columns == [
        "method",
        "backbone",
        "dataset",
        "metric",
        "train_size",
        "cls",
        "cls_seeds",
        "cls_sd",
        "mean",
        "mean_seeds",
        "cls_paired",
        "mean_minus_cls",
        "paired_seeds",
    ]
    assert numbers.select("method", "backbone", "dataset").rows() == [
        ("full", "vit", "isic"),
        ("full", "vit", "aptos"),
        ("full", "vit", "chest"),
        ("full", "dinov2", "isic"),
        ("linear", "dinov2", "aptos"),
        ("scratch", "vit", "isic"),
    ]
    rows = {(r["method"], r["backbone"], r["dataset"]): r for r in numbers.iter_rows(named=True)}
    vit = rows["full", "vit", "isic"]
    assert (vit["metric"], vit["train_size"]) == ("Acc", 10015)
    assert vit["cls_sd"] == pytest.approx((0.002 / 3) ** 0.5)  # sample SD of 0.80..0.86
    dino = rows["full", "dinov2", "isic"]
    assert dino["mean_minus_cls"] == pytest.approx(0.075) and dino["paired_seeds"] == 2  # (0.05 + 0.10) / 2
    assert dino["mean"] == pytest.approx(2.15 / 3) and dino["mean_seeds"] == 3
    aptos = rows["full", "vit", "aptos"]
    assert aptos["cls_sd"] is None and aptos["mean_minus_cls"] == pytest.approx(-0.0512)
    chest = rows["full", "vit", "chest"]
    assert chest["cls"] is None and chest["cls_seeds"] == 0 and chest["mean"] == pytest.approx(0.2)
    assert chest["metric"] == "mAP" and chest["mean_minus_cls"] is None and chest["paired_seeds"] == 0
    scratch = rows["scratch", "vit", "isic"]
    assert scratch["mean_minus_cls"] is None and scratch["paired_seeds"] == 0 and scratch["mean_seeds"] == 1


def test_table1_csv_round_trip(tmp_path):
    _, numbers = table1(RUNS, DATASETS, BACKBONES)
    numbers.write_csv(tmp_path / "table1.csv")
    back = pl.read_csv(tmp_path / "table1.csv")
    assert back.height == 6 and back["cls_seeds"].to_list() == [4, 1, 0, 2, 1, 1]
    assert back["paired_seeds"].to_list() == [1, 1, 0, 2, 1, 0]


def test_table1_column_order_follows_the_given_order():
    reordered = {d: DATASETS[d] for d in ["chest", "isic", "aptos"]}
    display, _ = table1(RUNS, reordered, ["dinov2", "vit"])
    assert display.columns == ["method", "backbone", HEADERS[2], HEADERS[0], HEADERS[1]]
    assert display.select("method", "backbone").rows() == [
        ("Full", "dinov2"),
        ("Full", "vit"),
        ("Linear", "dinov2"),
        ("Scratch", "vit"),
    ]


def test_notes_for_multi_seed_cells():
    _, numbers = table1(RUNS, DATASETS, BACKBONES)
    assert table_notes(numbers) == [
        "isic Full vit: CLS mean of all 4 seeds 83.00 (SD 2.58 points); the cell's CLS value and difference are "
        "over the 1 seed with both pools.",
    ]  # isic Full dinov2's 2 CLS seeds both have a mean-pool partner: its cell is every CLS run


def test_markdown_and_html_with_notes():
    display, numbers = table1(RUNS, DATASETS, BACKBONES)
    notes = table_notes(numbers)
    lines = markdown(display, notes).splitlines()
    assert lines[0] == "| method | backbone | " + " | ".join(HEADERS) + " |"
    assert lines[2] == "| Full | vit | 80.00 (+1.00; 1 seed) | 75.12 (-5.12; 1 seed) | 20.00 (mean-patch only) |"
    assert lines[5] == "| Scratch | vit | 67.83 |  |  |"
    assert lines[6] == "" and lines[7:] == [f"- {n}" for n in notes]
    assert markdown(display) == "\n".join(lines[:6]) + "\n"  # without notes: just the table
    page = html_table(display, "Table 1", notes)
    assert page.index("</table><ul><li>isic Full vit: CLS mean of all 4 seeds") > 0
    assert "<ul>" not in html_table(display, "Table 1")


PRETRAINED = pl.DataFrame(
    [
        ("vit", "cls", "knn@20", 0.80),
        ("vit", "mean", "knn@20", 0.75),
        ("dinov2", "cls", "knn@20", 0.50),
        ("dinov2", "mean", "knn@20", 0.60),
        ("vit", "cls", "knn@10", 0.11),
        ("vit", "mean", "knn@10", 0.99),
    ],
    schema={"backbone": pl.Utf8, "pool": pl.Utf8, "metric": pl.Utf8, "value": pl.Float64},
    orient="row",
)
KNN_RUNS = _runs(
    [
        ("isic", "vit", "full", "cls", 0, "knn@20", 0.70),
        ("isic", "vit", "full", "cls", 1, "knn@20", 0.72),
        ("isic", "vit", "full", "mean", 1, "knn@20", 0.80),  # paired with seed 1: +8.00 (not +9.00, not +10.00)
        ("isic", "vit", "linear", "cls", 0, "knn@20", 0.10),  # Table 2 is Full fine-tuning only
        ("aptos", "vit", "full", "cls", 0, "knn@20", 0.30),
        ("aptos", "vit", "full", "cls", 0, "knn@10", 0.99),  # another k
        ("isic", "vit", "full", "cls", 0, "score", 0.99),
    ]
)


def test_table2():
    display, numbers = table2(KNN_RUNS, PRETRAINED, DATASETS, BACKBONES, k=20)
    assert display.columns == ["backbone", "pre-trained", "isic (n=10k)", "aptos (n=2.9k)", "chest (n=366)"]
    assert display.rows() == [
        ("vit", "80.00 (-5.00; 1 seed)", "72.00 (+8.00; 1 seed)", "30.00", ""),
        ("dinov2", "50.00 (+10.00; 1 seed)", "", "", ""),
    ]
    assert numbers.select("backbone", "dataset", "metric", "train_size").rows() == [
        ("vit", "pre-trained", "knn@20", None),
        ("vit", "isic", "knn@20", 10015),
        ("vit", "aptos", "knn@20", 2930),
        ("dinov2", "pre-trained", "knn@20", None),
    ]
    isic = numbers.row(1, named=True)
    assert isic["cls"] == pytest.approx(0.71) and isic["mean_minus_cls"] == pytest.approx(0.08)
    assert (isic["cls_seeds"], isic["paired_seeds"]) == (2, 1)
    assert table_notes(numbers) == [
        "isic vit: CLS mean of all 2 seeds 71.00 (SD 1.41 points); the cell's CLS value and difference are over "
        "the 1 seed with both pools."
    ]


def _folder(root: Path, task: str, splits: list[str]) -> Path:
    n = len(splits)
    labels = [[i % 2, 1] for i in range(n)] if task == "multilabel" else [i % 2 for i in range(n)]
    rows = {
        "sample_id": [f"s{i}" for i in range(n)],
        "path": [f"/img/{i}.png" for i in range(n)],
        "split": splits,
        "labels" if task == "multilabel" else "label": labels,
    }
    return write_dataset(make_dataset(rows, task, ["a", "b"], "csv"), root)


def test_dataset_info(tmp_path):
    folders = {
        "zeta": _folder(tmp_path / "zeta", "multiclass", ["train"] * 3 + ["val", "test"]),
        "alpha": str(_folder(tmp_path / "alpha", "multilabel", ["train", "train", "test"])),
    }
    info = dataset_info(folders)
    assert list(info) == ["zeta", "alpha"]
    assert info == {"zeta": {"metric": "Acc", "train_size": 3}, "alpha": {"metric": "mAP", "train_size": 2}}


class _Named(dict):
    """What a rule script sees: attribute access to named inputs/outputs, items() for the outputs."""

    __getattr__ = dict.__getitem__


def test_paper_tables_script(tmp_path):
    folders = [
        _folder(tmp_path / "data/chest", "multilabel", ["train"] * 366 + ["test"]),
        _folder(tmp_path / "data/isic", "multiclass", ["train"] * 10015 + ["test"]),
    ]
    RUNS.write_parquet(tmp_path / "runs.parquet")
    PRETRAINED.write_parquet(tmp_path / "pretrained.parquet")
    out = _Named({f"table{i}_{e}": str(tmp_path / f"table{i}.{e}") for i in (1, 2) for e in ("csv", "md", "html")})
    smk = SimpleNamespace(
        input=_Named(
            runs=str(tmp_path / "runs.parquet"),
            pretrained=str(tmp_path / "pretrained.parquet"),
            datasets=[str(Path(f) / "manifest.parquet") for f in folders],
        ),
        params=_Named(datasets=["chest", "isic"], backbones=["vit"], k=20),
        output=out,
        log=[str(tmp_path / "log")],
        rule="paper_tables",
        threads=1,
    )
    runpy.run_path(str(SCRIPT), init_globals={"snakemake": smk})
    table1_md = Path(out["table1_md"]).read_text()
    assert table1_md.startswith("| method | backbone | chest mAP (n=366) | isic Acc (n=10k) |\n")
    assert "| Full | vit | 20.00 (mean-patch only) | 80.00 (+1.00; 1 seed) |" in table1_md
    assert "- isic Full vit: CLS mean of all 4 seeds 83.00" in table1_md
    assert pl.read_csv(out["table1_csv"])["dataset"].to_list() == ["chest", "isic", "isic"]
    assert Path(out["table2_md"]).read_text().startswith("| backbone | pre-trained | chest (n=366) | isic (n=10k) |")
    assert "<li>" in Path(out["table1_html"]).read_text()


def test_numbers_do_not_depend_on_the_row_order():
    # Float sums depend on their order; a Slurm run aggregates the same runs as a local one, in another order.
    # Values whose float sum depends on the order: (big + small) - big is not small.
    values = np.tile([0.9, 1e-17, -0.9 + 1e-16, 0.3], 10)
    runs = pl.DataFrame(
        {
            "run": [f"r{i}" for i in range(40)],
            "dataset": "isic",
            "backbone": "vit",
            "method": "full",
            "pool": ["cls"] * 20 + ["mean"] * 20,
            "seed": list(range(20)) * 2,
            "metric": "score",
            "layer": None,
            "value": values,
        },
        schema_overrides={"layer": pl.Int64},
    )
    info = {"isic": {"metric": "Acc", "train_size": 100}}
    reference = table1(runs, info, ["vit"])[1]
    for seed in range(5):
        shuffled = runs.sample(fraction=1.0, shuffle=True, seed=seed)
        assert table1(shuffled, info, ["vit"])[1].equals(reference)


def test_aggregate_says_when_every_run_failed(tmp_path):
    from repdrift.analysis.tables import aggregate
    from repdrift.errors import RepdriftError

    failed = {"isic/vit/full-cls/seed0": "diverged", "isic/vit/linear-cls/seed0": "diverged"}
    outs = {f"{name}_out": tmp_path / f"{name}.parquet" for name in ("runs", "trajectories", "pretrained", "grids")}
    study = [dict(run=run, dataset="isic", backbone="vit", method=run.split("/")[2][:-4], pool="cls", seed="0",
                  grids=["table1"]) for run in failed]  # fmt: skip
    with pytest.raises(RepdriftError, match="no run of the study finished: 2 failed"):
        aggregate([], [], [], [], [], [], [], study, failed, {}, **outs)
    assert not any(path.exists() for path in outs.values())


def test_baselines_by_hand(tmp_path):
    from repdrift.analysis.tables import score_baselines

    # Test labels 0, 1, 0, 0, 2 of 3 classes: always predicting class 0 scores 3 / 5; a guess 1 / 3.
    rows = {
        "sample_id": [f"s{i}" for i in range(7)],
        "path": [f"/img/{i}.png" for i in range(7)],
        "split": ["train", "train", "test", "test", "test", "test", "test"],
        "label": [1, 2, 0, 1, 0, 0, 2],
    }
    folder = write_dataset(make_dataset(rows, "multiclass", ["a", "b", "c"], "csv"), tmp_path / "multi")
    assert score_baselines(folder) == pytest.approx(dict(majority=0.6, chance=1 / 3))
    # Multi-label: one constant score for every image has AP = prevalence per label (sklearn's, by hand: 1/2, 1/4).
    rows = {
        "sample_id": [f"s{i}" for i in range(5)],
        "path": [f"/img/{i}.png" for i in range(5)],
        "split": ["train"] + ["test"] * 4,
        "labels": [[1, 1], [1, 0], [0, 1], [1, 0], [0, 0]],
    }
    folder = write_dataset(make_dataset(rows, "multilabel", ["a", "b"], "csv"), tmp_path / "ml")
    from sklearn.metrics import average_precision_score

    targets = np.array([[1, 0], [0, 1], [1, 0], [0, 0]])
    reference = np.mean([average_precision_score(targets[:, c], np.zeros(4)) for c in range(2)])
    assert score_baselines(folder)["majority"] == pytest.approx(reference) == pytest.approx((0.5 + 0.25) / 2)


def test_grids_table_keeps_failed_runs_and_flags_runs_at_the_baseline():
    from repdrift.analysis.tables import membership

    study = [
        dict(run=f"isic/vit/{m}-cls/seed{s}", dataset="isic", backbone="vit", method=m, pool="cls", seed=str(s),
             grids=grids)
        for m, s, grids in [("full", 0, ["table1", "similarity"]), ("linear", 0, ["table1"]), ("full", 1, ["sim"])]
    ]  # fmt: skip
    runs = _runs([("isic", "vit", "full", "cls", 0, "score", 0.75), ("isic", "vit", "linear", "cls", 0, "score", 0.6)])
    failed = {"isic/vit/full-cls/seed1": "diverged"}
    table = membership(study, failed, runs, {"isic": dict(majority=0.6, chance=0.25)})
    assert table.height == 4 and table.columns[:7] == ["grid", "run", "dataset", "backbone", "method", "pool", "seed"]
    lost = table.filter(pl.col("run") == "isic/vit/full-cls/seed1").row(0, named=True)
    assert (lost["seed"], lost["failure"], lost["score"], lost["at_baseline"]) == (1, "diverged", None, None)
    probe = table.filter(pl.col("run") == "isic/vit/linear-cls/seed0").row(0, named=True)
    assert probe["at_baseline"] is True and probe["majority"] == 0.6  # at the majority rate: degenerate
    assert not any(table.filter(pl.col("method") == "full", pl.col("seed") == 0)["at_baseline"])
