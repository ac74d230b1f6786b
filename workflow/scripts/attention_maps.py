# One job draws every backbone's sheet: one process, one torch import, for a few seconds of work.
from pathlib import Path

from repdrift.report.attention import attention_figure, caption
from repdrift.rule import run


def attention_figures(backbones, weights, models, pools, runs, failed, dataset_dir, n_images, pngs, captions):
    for backbone_cfg, weights_path, pool_list, run_list, failed_runs, png, caption_path in zip(
        backbones, weights, pools, runs, failed, pngs, captions, strict=True
    ):
        model_paths, models = models[: len(pool_list)], models[len(pool_list) :]
        attention_figure(dict(backbone_cfg), weights_path, model_paths, pool_list, dataset_dir, n_images, png)
        Path(caption_path).write_text(caption(backbone_cfg["name"], run_list, pool_list, failed_runs))


i, p, o = snakemake.input, snakemake.params, snakemake.output
run(
    snakemake,
    attention_figures,
    backbones=list(p.backbones),
    weights=list(i.weights),
    models=list(i.models),
    pools=[list(pools) for pools in p.pools],
    runs=[list(runs) for runs in p.runs],
    failed=[list(runs) for runs in p.failed],
    dataset_dir=Path(i.manifest).parent,
    n_images=p.n_images,
    pngs=list(o.pngs),
    captions=list(o.captions),
)
