"""Rule pretrain_demo: pre-train one demo backbone on the train split of a prepared dataset.

The paradigm (supervised, CLIP, DINO-style self-distillation) is the backbone's own; the objectives live in
repdrift.models.pretrain. CLIP's captions are made from the dataset's class names.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from repdrift.data import read_dataset
from repdrift.data.images import load_image
from repdrift.errors import ConfigError
from repdrift.models.pretrain import pretrain


def pretrain_on_dataset(backbone_cfg: dict, dataset_dir: str | Path, recipe: dict, weights_out, history_out) -> None:
    dataset = read_dataset(dataset_dir)
    if dataset.task != "multiclass":
        raise ConfigError(f"pretrain.dataset: {dataset_dir} is {dataset.task}; pre-training needs a multiclass dataset")
    train = dataset.manifest.filter(pl.col("split") == "train").sort("sample_id")
    images = [load_image(path) for path in train["path"]]
    history = pretrain(
        backbone_cfg["paradigm"],
        backbone_cfg,
        images,
        labels=train["label"].to_list(),
        class_names=dataset.classes,
        out_path=weights_out,
        epochs=recipe.get("epochs"),
        batch_size=recipe.get("batch_size"),
        lr=recipe.get("lr"),
        seed=recipe.get("seed", 0),
    )
    pl.DataFrame(history).write_parquet(history_out)
