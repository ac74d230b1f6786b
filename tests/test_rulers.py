"""The agreement and "which ruler" analyses on hand-made runs, against scipy's Spearman."""

import numpy as np
import polars as pl
import pytest
from scipy.stats import spearmanr

from repdrift.analysis.paper import FitRule, per_run_values
from repdrift.analysis.rulers import (
    agreement_table,
    measure_names,
    paper_conclusion,
    ruler_chart,
    ruler_table,
    spearman_ci,
)


def test_spearman_ci_is_scipys_rho_with_a_bracketing_interval():
    rng = np.random.default_rng(0)
    x = rng.normal(size=30)
    y = x + rng.normal(scale=0.8, size=30)
    rho, lo, hi, boot = spearman_ci(x, y, 500, 0.95, seed=1)
    assert rho == pytest.approx(spearmanr(x, y).statistic, rel=1e-12)
    assert lo < rho < hi and boot.shape == (500,)
    assert np.isnan(spearman_ci(np.ones(5), np.arange(5.0), 10, 0.95, 0)[0])  # a constant measure: undefined


def study():
    """Two backbones x 12 runs: for vit forgetting follows CKA; for dino it is noise. RSA is CKA reversed."""
    rng = np.random.default_rng(3)
    rows, pre = [], []
    for backbone in ("vit", "dino"):
        pre.append(dict(backbone=backbone, pool="cls", metric="knn@20", value=0.9))
        for seed in range(12):
            run = f"isic/{backbone}/full-cls/seed{seed}"
            cka = rng.uniform(0.2, 0.9)
            knn = 0.5 + 0.4 * cka if backbone == "vit" else rng.uniform(0.5, 0.9)
            keys = dict(run=run, dataset="isic", backbone=backbone, method="full", pool="cls", seed=seed)
            for metric, value, layer in (
                ("cka", cka, 3),
                ("cka_debiased", cka - 0.05, 3),
                ("rsa", 1 - cka, 3),
                ("score", rng.uniform(0.6, 0.8), None),
                ("knn@20", knn, None),
                ("knn_ece@20", 0.1, None),
            ):
                rows.append(dict(keys, metric=metric, layer=layer, value=value))
    return pl.DataFrame(rows, schema_overrides={"layer": pl.Int64}), pl.DataFrame(pre)


def test_agreement_ruler_and_the_papers_conclusion_per_measure():
    runs, pretrained = study()
    measures = measure_names(runs)
    assert measures == ["cka", "cka_debiased", "rsa"]
    wide = per_run_values(runs, pretrained, measures, 3, 20)
    assert wide.height == 24 and "forgetting" in wide.columns
    agreement = agreement_table(wide, measures, 200, 0.95)
    pair = agreement.filter((pl.col("backbone") == "vit") & (pl.col("a") == "cka") & (pl.col("b") == "rsa"))
    assert pair["spearman"][0] == pytest.approx(-1.0)
    table, replicates = ruler_table(wide, measures, FitRule(3, "none", 3, 1), 200, 0.95)
    vit = table.filter((pl.col("backbone") == "vit") & (pl.col("function") == "forgetting"))
    assert vit.filter(pl.col("measure") == "cka")["spearman"][0] == pytest.approx(1.0)
    assert set(vit["rank"]) == {1}  # |r| = 1 for all three
    knn_ece = table.filter(pl.col("function") == "knn_ece")
    assert knn_ece["spearman"].is_nan().all()  # a constant function: undefined, not 0
    conclusion = paper_conclusion(replicates, measures, {"vit": "supervised", "dino": "self_supervised"}, 0.95)
    # r = 1 for vit, noise for dino, under both CKAs; this RSA is reversed (r = -1 for vit): a wrong-signed relation
    # is never the stronger one.
    verdicts = dict(zip(conclusion["measure"], conclusion["verdict"]))
    assert verdicts == {"cka": "agrees", "cka_debiased": "agrees", "rsa": "disagrees"}
    # The figure draws both correlations: Spearman's bars and the interval fit's diamonds, each with its CI.
    layers = ruler_chart(table).to_dict()["spec"]["layer"]
    drawn = {(layer["mark"]["type"], layer["encoding"]["x"]["field"]) for layer in layers}
    assert drawn == {("bar", "spearman"), ("rule", "spearman_lo"), ("rule", "interval_lo"), ("point", "interval_r")}


def test_a_nan_measure_gets_no_rank_and_leaves_its_run_out_of_the_agreement():
    runs, pretrained = study()
    nan_rsa = pl.col("metric") == "rsa"
    runs = runs.with_columns(
        value=pl.when(nan_rsa & (pl.col("run") == "isic/vit/full-cls/seed0")).then(float("nan")).otherwise("value")
    )
    wide = per_run_values(runs, pretrained, ["cka", "rsa"], 3, 20)
    agreement = agreement_table(wide, ["cka", "rsa"], 200, 0.95).filter(pl.col("backbone") == "vit")
    assert agreement["runs"][0] == 11 and agreement["spearman"][0] == pytest.approx(-1.0)
    table, _ = ruler_table(wide, ["cka", "rsa"], FitRule(3, "none", 3, 1), 50, 0.95)
    undefined = table.filter(pl.col("function") == "knn_ece")
    assert undefined["rank"].is_null().all()  # a constant function: no correlation, no rank
