from repdrift.data.demo import make_demo_data
from repdrift.rule import run

run(snakemake, make_demo_data, out_root=snakemake.output.root, seed=snakemake.params.seed)
