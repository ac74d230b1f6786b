"""The trajectory chart's measure menu: every similarity measure of the study, the configured one first."""

import polars as pl

from repdrift.report.plots import cka_trajectory_chart


def test_the_trajectory_menu_lists_every_measure_and_starts_on_the_configured_one():
    rows = [
        dict(run=f"r{seed}", backbone="vit", epoch=epoch, metric=metric, layer=layer, value=0.5 + 0.1 * seed)
        for seed in range(2)
        for epoch in range(3)
        for metric, layer in (("cka", 3), ("cka_debiased", 3), ("procrustes", 3), ("cka", 1), ("score", None))
    ]
    chart, numbers = cka_trajectory_chart(pl.DataFrame(rows), "cka_debiased", 3, 3, "80")
    spec = chart.to_dict()
    (param,) = spec["params"]
    assert param["name"] == "measure" and param["value"] == "cka_debiased"
    assert param["bind"]["options"] == ["cka_debiased", "cka", "procrustes"]
    assert numbers["epoch"] == 2 and numbers["final_cka"] == {"vit": 0.55}
