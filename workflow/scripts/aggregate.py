from pathlib import Path

from repdrift.analysis.tables import aggregate
from repdrift.rule import run

i, o = snakemake.input, snakemake.output
run(
    snakemake,
    aggregate,
    runs=[dict(run) for run in snakemake.params.runs],
    classification=list(i.classification),
    calibration=list(i.calibration),
    knn=list(i.knn),
    cka=list(i.cka),
    history=list(i.history),
    pretrained_knn=list(i.pretrained_knn),
    study=[dict(entry) for entry in snakemake.params.study],
    failed=dict(snakemake.params.failed),
    datasets={name: Path(m).parent for name, m in zip(snakemake.params.datasets, i.datasets, strict=True)},
    runs_out=o.runs,
    trajectories_out=o.trajectories,
    pretrained_out=o.pretrained,
    grids_out=o.grids,
    weight_change=list(i.weight_change),
    change_runs=[dict(run) for run in snakemake.params.change_runs],
    change_energy=snakemake.params.change_energy,
    weight_change_out=o.weight_change,
)
