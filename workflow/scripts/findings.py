import polars as pl

from repdrift.analysis.findings import external_rows, findings, findings_table, write_findings_page
from repdrift.analysis.tradeoff import verdict_lines
from repdrift.rule import run


def page(runs, trajectories, pretrained, grids, fits, bootstrap, tradeoff, peft, rulers, out, table_out, **options):
    runs, pretrained = pl.read_parquet(runs), pl.read_parquet(pretrained)
    claims, facts = findings(
        runs,
        pl.read_parquet(trajectories),
        pretrained,
        pl.read_parquet(grids),
        pl.read_csv(fits),
        pl.read_parquet(bootstrap),
        **options,
    )
    preserving = [pl.read_csv(path) for path in tradeoff]
    beyond = [line for verdicts in preserving for line in verdict_lines(verdicts)]
    beyond_seeds = min((int(v["seeds"].min()) for v in preserving if v.height), default=None)
    efficient = [pl.read_csv(path) for path in peft]
    per_measure = pl.read_csv(rulers).to_dicts()
    # Your own fine-tuned models beside the Full runs of their cell (none: no section).
    external = external_rows(runs, pretrained, options["similarity"], options["layer"], options["k"])
    write_findings_page(
        claims, facts, out, beyond, per_measure, efficient[0] if efficient else None, external, beyond_seeds
    )
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
    peft=list(i.peft),
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
