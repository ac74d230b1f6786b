from repdrift.measure import cka_table
from repdrift.rule import run


def cka(pretrained, finetuned, trajectory, debiased, out):
    cka_table(pretrained, finetuned, trajectory, debiased).write_parquet(out)


i = snakemake.input
run(snakemake, cka, pretrained=i.pretrained, finetuned=i.finetuned, trajectory=i.trajectory,
    debiased=snakemake.params.debiased, out=snakemake.output.cka)
