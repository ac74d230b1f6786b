# Used by rule measure (one run) and measure_batch_* (several runs of one backbone, method and pool in one process,
# train.runs_per_job).
from repdrift.measure import measure_run
from repdrift.rule import run, run_each

i, p, o = snakemake.input, snakemake.params, snakemake.output
OUTPUTS = ("cka", "knn", "calibration", "reliability", "classification")


def measure(suffix: str, log: str | None) -> None:
    run(
        snakemake,
        measure_run,
        log=log,
        trajectory=i["trajectory" + suffix],
        reference=i["reference" + suffix],
        natural=i["natural" + suffix],
        predictions=i["predictions" + suffix],
        pool=p.pool,
        ks=list(p.ks),
        temperature=p.temperature,
        n_bins=p.n_bins,
        measures=list(p.measures),
        mutual_k=p.mutual_k,
        mutual_clip=p.mutual_clip,
        rbf_bandwidth=p.rbf_bandwidth,
        out={name: o[name + suffix] for name in OUTPUTS},
    )


if "runs" not in p.keys():
    measure("", None)
else:
    run_each(p.runs, lambda index: measure(f"_{index}", snakemake.log[f"run_{index}"]))
