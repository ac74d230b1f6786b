# One job draws every backbone's sheet: one process, one torch import, for a few seconds of work.
from pathlib import Path

from repdrift.attention import attention_figure
from repdrift.rule import run


def attention_figures(backbones, weights, models, pools, dataset_dir, n_images, outs):
    for backbone_cfg, weights_path, pool_list, out_path in zip(backbones, weights, pools, outs, strict=True):
        model_paths, models = models[: len(pool_list)], models[len(pool_list) :]
        attention_figure(dict(backbone_cfg), weights_path, model_paths, pool_list, dataset_dir, n_images, out_path)


i, p = snakemake.input, snakemake.params
run(snakemake, attention_figures, backbones=list(p.backbones), weights=list(i.weights), models=list(i.models),
    pools=[list(pools) for pools in p.pools], dataset_dir=Path(i.manifest).parent, n_images=p.n_images,
    outs=list(snakemake.output.pngs))
