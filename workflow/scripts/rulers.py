# Rule rulers: the similarity measures' agreement and which of them predicts forgetting, calibration and the score.
import polars as pl

from repdrift.analysis.paper import FitRule, cka_sample_sizes, grid_runs, layer_name, per_run_values, resolve_layer
from repdrift.analysis.rulers import (
    agreement_chart,
    agreement_table,
    captions,
    measure_names,
    paper_conclusion,
    ruler_chart,
    ruler_table,
)
from repdrift.report.plots import save_chart
from repdrift.rule import run


def analyse(i, p, o):
    runs = pl.read_parquet(i.runs)
    selected = grid_runs(runs, pl.read_parquet(i.grids), p.grid)
    layer, last = resolve_layer(runs, p.layer), resolve_layer(runs, "final")
    measures = measure_names(selected)
    wide = per_run_values(selected, pl.read_parquet(i.pretrained), measures, layer, p.k)
    agreement = agreement_table(wide, measures, p.n_bootstrap, p.confidence)
    agreement.write_csv(o.agreement)
    table, replicates = ruler_table(wide, measures, FitRule(**p.fit_rule), p.n_bootstrap, p.confidence)
    table.write_csv(o.rulers)
    conclusion = paper_conclusion(replicates, measures, dict(p.paradigms), p.confidence)
    conclusion.write_csv(o.conclusion)
    print(table)
    print(conclusion)
    n = cka_sample_sizes(selected)
    settings = (
        f"RBF CKA: sigma = {p.rbf_bandwidth:g} x the median distance; mutual k-NN: k = {p.mutual_k}, features "
        + (f"clipped at their {p.mutual_clip:g} quantile of absolute values." if p.mutual_clip < 1 else "not clipped.")
    )
    facts = dict(
        grid=p.grid, layer=layer_name(layer, last), n=", ".join(map(str, n)), confidence=p.confidence, settings=settings
    )
    first, second = captions(agreement, table, conclusion, facts)
    for chart, html, svg, caption_path, text in (
        (agreement_chart(agreement), o.agreement_html, o.agreement_svg, o.agreement_caption, first),
        (ruler_chart(table), o.rulers_html, o.rulers_svg, o.rulers_caption, second),
    ):
        save_chart(chart, html, svg)
        with open(caption_path, "w") as handle:
            handle.write(text + "\n")


run(snakemake, analyse, i=snakemake.input, p=snakemake.params, o=snakemake.output)
