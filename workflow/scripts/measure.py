# Used by rule measure: one run's measurements (repdrift.measurement.measure).
from repdrift.measurement.measure import measure_run
from repdrift.rule import run

i, p, o = snakemake.input, snakemake.params, snakemake.output
run(
    snakemake,
    measure_run,
    trajectory=i.trajectory,
    reference=i.reference,
    natural=i.natural,
    predictions=i.predictions,
    pool=p.pool,
    ks=list(p.ks),
    temperature=p.temperature,
    n_bins=p.n_bins,
    measures=list(p.measures),
    mutual_k=p.mutual_k,
    mutual_clip=p.mutual_clip,
    rbf_bandwidth=p.rbf_bandwidth,
    out={name: o[name] for name in ("cka", "knn", "calibration", "reliability", "classification")},
)
