# The pre-trained backbone's k-NN on the natural domain (rule knn_pretrained); a run's is in rule measure.
from repdrift.measurement.measure import knn_table
from repdrift.rule import run


def knn(features, pool, ks, temperature, n_bins, out):
    knn_table(features, pool, ks, temperature, n_bins).write_parquet(out)


p = snakemake.params
run(
    snakemake,
    knn,
    features=snakemake.input.features,
    pool=p.pool,
    ks=list(p.ks),
    temperature=p.temperature,
    n_bins=p.n_bins,
    out=snakemake.output.knn,
)
