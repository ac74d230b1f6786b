# Rule figures: every Altair figure of the report, each from the tables and analyses it reads.
import polars as pl

from repdrift.analysis.paper import FitRule, grid_runs, resolve_layer
from repdrift.report.plots import (
    cka_distribution_chart,
    cka_heatmap_chart,
    cka_trajectory_chart,
    cka_vs_score_chart,
    correlation_chart,
    grid_view,
    knn_forgetting_chart,
    render,
    similarity_axis,
    similarity_facts,
    similarity_space_chart,
)
from repdrift.rule import run
from repdrift.study import PAPER_METHODS


def draw(name, chart, numbers, out):
    render(name, chart, numbers, out[f"{name}_html"], out[f"{name}_svg"], out[f"{name}_caption"])
    print(f"{name}: done", flush=True)


def figures(i, p, out):
    runs, grids, trajectories = (pl.read_parquet(path) for path in (i.runs, i.grids, i.trajectories))
    selected, layer, last, facts = grid_view(runs, grids, p.grid, p.similarity, p.layer)
    grid_trajectories = grid_runs(trajectories, grids, p.grid)

    chart, numbers = cka_trajectory_chart(grid_trajectories, p.similarity, layer, last, facts["n"])
    draw("cka_trajectory", chart, numbers | facts, out)
    _, _, _, final_facts = grid_view(runs, grids, p.grid, p.similarity, "final")
    chart, numbers = cka_heatmap_chart(grid_trajectories, p.similarity, last)
    draw("cka_heatmap", chart, numbers | final_facts | {"layer": "every layer"}, out)
    chart, numbers = cka_distribution_chart(selected, p.similarity, layer, last)
    draw("cka_distribution", chart, numbers | facts, out)
    chart, numbers = cka_vs_score_chart(selected, p.similarity, layer, last)
    draw("cka_vs_score", chart, numbers | facts, out)

    # The similarity space holds every fine-tuned run, not only the similarity grid's.
    space = pl.read_parquet(i.space).filter(pl.col("method").is_in(PAPER_METHODS))  # the preserving: rule tradeoff
    all_last, all_layer = resolve_layer(runs, "final"), resolve_layer(runs, p.layer)
    axis = similarity_axis(p.similarity, all_layer, all_last)
    chart, numbers = similarity_space_chart(space, p.eta, p.eps, axis)
    used = runs.join(space.select("run"), on="run", how="semi")
    space_facts = similarity_facts(used, p.similarity, all_layer, all_last) | {"divergence": p.divergence}
    draw("similarity_space", chart, numbers | space_facts, out)

    metrics = list(p.metrics)
    chart, numbers = correlation_chart(
        pl.read_csv(i.fits), pl.read_parquet(i.points), p.similarity, layer, last, metrics
    )
    numbers.update(rule=FitRule(**p.fit_rule).describe(), confidence=p.confidence)
    draw("correlation", chart, numbers | facts, out)

    chart, numbers = knn_forgetting_chart(
        grid_runs(runs, grids, p.grid), pl.read_parquet(i.pretrained), p.k, p.confidence
    )
    draw("knn_forgetting", chart, numbers | {"grid": p.grid}, out)


run(snakemake, figures, i=snakemake.input, p=snakemake.params, out=snakemake.output)
