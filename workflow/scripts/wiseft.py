# Used by rule wiseft (every a of one seed's weight-space ensemble of its Linear probe and LP-FT run, repdrift.wiseft)
# and wiseft_batch_* (those of several seeds or datasets of one backbone and pool in one process, train.runs_per_job).
from pathlib import Path

from repdrift.rule import run, run_each
from repdrift.wiseft import wise_ft

i, p, o, wc = snakemake.input, snakemake.params, snakemake.output, snakemake.wildcards
names = ("models", "histories", "predictions", "trajectories", "naturals")
keys = ("model", "history", "predictions", "trajectory", "natural")


def derive(probe: str, lpft: str, manifest: str, seed: int, cka_samples: int, suffix: str, log: str | None) -> None:
    outputs = [dict(zip(keys, files)) for files in zip(*(o[name + suffix] for name in names), strict=True)]
    run(
        snakemake,
        wise_ft,
        log=log,
        backbone_cfg=dict(p.backbone),
        probe_model=probe,
        lpft_model=lpft,
        dataset_dir=Path(manifest).parent,
        alphas=list(p.alphas),
        methods=list(p.methods),
        outputs=outputs,
        epochs=p.epochs,
        seed=seed,
        batch_size=p.batch_size,
        cka_samples=cka_samples,
        feature_dtype=p.feature_dtype,
        knn=dict(dataset_dir=Path(i.natural).parent, splits=list(p.knn_splits), batch_size=p.batch_size),
    )


if "seeds" not in p.keys():
    derive(i.probe, i.lpft, i.manifest, int(wc.seed), p.cka_samples, "", None)
else:
    run_each(
        len(p.seeds),
        lambda index: derive(
            i[f"probe_{index}"],
            i[f"lpft_{index}"],
            i[f"manifest_{index}"],
            p.seeds[index],
            p.cka_samples[index],
            f"_{index}",
            snakemake.log[f"run_{index}"],
        ),
    )
