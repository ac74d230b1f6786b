from pathlib import Path

from repdrift.attention import attention_figure
from repdrift.rule import run

i, p = snakemake.input, snakemake.params
run(snakemake, attention_figure, backbone_cfg=dict(p.backbone), weights=i.weights, model_paths=list(i.models),
    pools=list(p.pools), dataset_dir=Path(i.manifest).parent, n_images=p.n_images, out_path=snakemake.output.png)
