# Rule tradeoff: the preserving and PEFT grids' trade-off table and figure, each grid's verdicts, and the early
# prediction of forgetting.
import polars as pl

from repdrift.analysis.paper import cka_sample_sizes, grid_runs
from repdrift.analysis.tradeoff import (
    early_caption,
    early_chart,
    early_prediction,
    facts_for,
    paired_verdicts,
    peft_lines,
    peft_verdicts,
    run_values,
    tradeoff_caption,
    tradeoff_chart,
    tradeoff_table,
    verdict_lines,
)
from repdrift.analysis.weight_change import cell_of, change_rank_caption, change_rank_chart, per_block
from repdrift.report.plots import save_chart
from repdrift.rule import run


def analyse(i, p, o):
    runs, trajectories = pl.read_parquet(i.runs), pl.read_parquet(i.trajectories)
    layer, axis = facts_for(runs, p.similarity, p.layer)
    values = run_values(runs, pl.read_parquet(i.pretrained), p.similarity, layer, p.k)
    grids = pl.read_parquet(i.grids)
    of_grid = {
        name: grid_runs(values, grids, name, key=key) if name else values.clear()
        for name, key in ((p.grid, "analysis.preserving_grid"), (p.peft_grid, "analysis.peft_grid"))
    }
    both = pl.concat(of_grid.values()).unique("run", maintain_order=True)
    table = tradeoff_table(both, pl.read_parquet(i.space), p.eta, p.eps, p.confidence, p.similarity)
    table.write_csv(o.table)
    judged = paired_verdicts(of_grid[p.grid], p.verdict_wiseft, p.confidence)
    judged.write_csv(o.verdicts)
    peft = peft_verdicts(of_grid[p.peft_grid], p.confidence)
    peft.write_csv(o.peft_verdicts)
    lines = verdict_lines(judged) + peft_lines(peft)
    print("\n".join(lines))
    n = cka_sample_sizes(runs)
    grid_names = " and ".join(f"`{name}`" for name in (p.grid, p.peft_grid) if name)
    facts = dict(grid=grid_names, axis=axis, n=", ".join(map(str, n)), confidence=p.confidence)
    save_chart(tradeoff_chart(table, axis), o.tradeoff_html, o.tradeoff_svg)
    with open(o.tradeoff_caption, "w") as caption:
        caption.write(tradeoff_caption(table, lines, facts) + "\n")
    errors = early_prediction(trajectories, values, p.similarity, layer)
    errors.write_csv(o.early)
    print(errors)
    save_chart(early_chart(errors), o.early_prediction_html, o.early_prediction_svg)
    with open(o.early_prediction_caption, "w") as caption:
        caption.write(early_caption(errors, facts) + "\n")
    # The rank of the weight change per block, on the similarity grid's dataset and pool (every trained run there).
    changes = pl.read_parquet(i.weight_change)
    dataset, pool = cell_of(pl.read_parquet(i.grids), p.similarity_grid)
    blocks = per_block(changes, dataset, pool)
    energy = float(changes["energy"][0]) if changes.height else float("nan")
    save_chart(change_rank_chart(blocks), o.change_rank_html, o.change_rank_svg)
    with open(o.change_rank_caption, "w") as caption:
        caption.write(change_rank_caption(blocks, dataset, pool, energy) + "\n")


run(snakemake, analyse, i=snakemake.input, p=snakemake.params, o=snakemake.output)
