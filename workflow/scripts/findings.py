import polars as pl

from repdrift.analysis.findings import findings, findings_table, write_findings_page
from repdrift.analysis.tradeoff import verdict_lines
from repdrift.rule import run


def page(runs, trajectories, pretrained, grids, fits, bootstrap, tradeoff, rulers, out, table_out, **options):
    claims, facts = findings(
        pl.read_parquet(runs),
        pl.read_parquet(trajectories),
        pl.read_parquet(pretrained),
        pl.read_parquet(grids),
        pl.read_csv(fits),
        pl.read_parquet(bootstrap),
        **options,
    )
    beyond = [line for path in tradeoff for line in verdict_lines(pl.read_csv(path))]
    per_measure = pl.read_csv(rulers).to_dicts()
    write_findings_page(claims, facts, out, beyond, per_measure)
    findings_table(claims).write_csv(table_out)
    for claim in claims:
        print(f"({claim.key}) {claim.title} -> {claim.verdict}")
        for part in claim.parts:
            print(f"    {part.label}: {part.measured} -> {part.verdict}")


i, p = snakemake.input, snakemake.params
run(
    snakemake,
    page,
    runs=i.runs,
    trajectories=i.trajectories,
    pretrained=i.pretrained,
    grids=i.grids,
    fits=i.fits,
    bootstrap=i.bootstrap,
    tradeoff=list(i.tradeoff),
    rulers=i.rulers,
    out=snakemake.output.page,
    table_out=snakemake.output.table,
    grid=p.grid,
    layer=p.layer,
    similarity=p.similarity,
    k=p.k,
    paradigms=dict(p.paradigms),
    confidence=p.confidence,
    warmup_epochs=p.warmup_epochs,
)
