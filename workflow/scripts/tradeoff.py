# Rule tradeoff: the preserving grid's trade-off table, verdicts and figure, and the early prediction of forgetting.
import polars as pl

from repdrift.analysis.paper import cka_sample_sizes, grid_runs
from repdrift.analysis.tradeoff import (
    early_caption,
    early_chart,
    early_prediction,
    facts_for,
    paired_verdicts,
    run_values,
    tradeoff_caption,
    tradeoff_chart,
    tradeoff_table,
    verdict_lines,
)
from repdrift.report.plots import save_chart
from repdrift.rule import run


def analyse(i, p, o):
    runs, trajectories = pl.read_parquet(i.runs), pl.read_parquet(i.trajectories)
    layer, axis = facts_for(runs, p.similarity, p.layer)
    values = run_values(runs, pl.read_parquet(i.pretrained), p.similarity, layer, p.k)
    grid_values = grid_runs(values, pl.read_parquet(i.grids), p.grid, key="analysis.preserving_grid")
    table = tradeoff_table(grid_values, pl.read_parquet(i.space), p.eta, p.eps, p.confidence, p.similarity)
    table.write_csv(o.table)
    judged = paired_verdicts(grid_values, p.verdict_wiseft, p.confidence)
    judged.write_csv(o.verdicts)
    lines = verdict_lines(judged)
    print("\n".join(lines))
    n = cka_sample_sizes(runs)
    facts = dict(grid=p.grid, axis=axis, n=", ".join(map(str, n)), confidence=p.confidence)
    save_chart(tradeoff_chart(table, axis), o.tradeoff_html, o.tradeoff_svg)
    with open(o.tradeoff_caption, "w") as caption:
        caption.write(tradeoff_caption(table, lines, facts) + "\n")
    errors = early_prediction(trajectories, values, p.similarity, layer)
    errors.write_csv(o.early)
    print(errors)
    save_chart(early_chart(errors), o.early_prediction_html, o.early_prediction_svg)
    with open(o.early_prediction_caption, "w") as caption:
        caption.write(early_caption(errors, facts) + "\n")


run(snakemake, analyse, i=snakemake.input, p=snakemake.params, o=snakemake.output)
