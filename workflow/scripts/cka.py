from repdrift.measure import cka_table
from repdrift.rule import run


def cka(pretrained, trajectory, out):
    cka_table(pretrained, trajectory).write_parquet(out)


i = snakemake.input
run(snakemake, cka, pretrained=i.pretrained, trajectory=i.trajectory, out=snakemake.output.cka)
