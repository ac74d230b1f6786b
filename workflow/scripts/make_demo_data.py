from repdrift.data.demo import make_demo_data
from repdrift.rule import run


def make(out_root, seed, options):
    # YAML gives lists; the generator's split sizes are tuples.
    make_demo_data(out_root, seed=seed, **{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})


run(snakemake, make, out_root=snakemake.output.root, seed=snakemake.params.seed, options=dict(snakemake.params.options))
