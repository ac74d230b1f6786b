"""Your own fine-tuned models: a model file made elsewhere, imported as a run of the study (method `external`).

An entry of the config's `external_models` (dataset, backbone, pool, seed, path, format, classes) is the run
`{dataset}/{backbone}/external-{pool}/seed{seed}`. Nothing is trained: one job reads the file, checks that it fits
the named backbone, and writes the files a fine-tune writes (training.write_run), so every measurement reads them
unchanged:

- model.safetensors: the workflow's layout (backbone.* under the library's key names, head.* in the dataset's class
  order when the file has a usable head), metadata method `external`, the pool and seed, and the source file;
- history.parquet: no rows (no epoch was trained), the columns of a fine-tune's history;
- trajectory.h5: the CKA sample's features of the pre-trained backbone (epoch 0) and of the imported model (epoch
  1, the `epochs` attribute [0, 1]): the final similarity at every layer is the last entry's, as for any run;
- predictions.h5: the test split's predictions when a head and its label order are known, else a file with no
  rows (measure then writes empty classification and calibration tables);
- features/{knn dataset}.h5: the imported model's final representation of the k-NN dataset, in the run's pool.

The test split is evaluated as a fine-tune evaluates it (the same loader, `train.batch_size` images per batch) and
the k-NN features are extracted as a fine-tune extracts them, so a model the workflow trained, imported back,
measures exactly as its own run (tests/test_workflow_e2e.py).

Formats (`format`): `repdrift`, a model.safetensors this workflow writes (`backbone.*`, `head.*` in the dataset's
class order unless `classes` says otherwise); `timm`, a timm VisionTransformer state_dict (`head.*` optional);
`open_clip`, an open_clip CLIP state_dict or its image tower alone (`visual.*`; text-tower keys are ignored;
`head.*` optional). Files are .safetensors or torch .bin / .pth / .pt (read with weights_only); a `state_dict`
wrapper and a `module.` prefix (DistributedDataParallel) are taken off. A timm or open_clip head is read only with
`classes`, its label order. A file that does not fit fails with one line naming the entry's key
(`external_models[i].path`, `.classes` or `.pool`) and the mismatch, before anything is written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import torch

from repdrift.data import read_dataset
from repdrift.errors import ConfigError, DataError
from repdrift.formats.features import cka_sample
from repdrift.formats.predictions import Predictions
from repdrift.models import build_backbone
from repdrift.training.finetune import (
    Classifier,
    RunOutputs,
    _Loop,
    evaluate,
    num_outputs,
    sample_features,
    test_split,
    write_run,
)

FORMATS = ("repdrift", "timm", "open_clip")
# The library whose key names each format uses (repdrift: the backbone's own).
FORMAT_LIBRARY = {"timm": "timm", "open_clip": "open_clip"}
# A fine-tune's history columns (training.finetune): an imported model has none of its rows.
HISTORY_SCHEMA = {
    "epoch": pl.Int64,
    "train_loss": pl.Float64,
    "test_loss": pl.Float64,
    "metric": pl.Utf8,
    "test_value": pl.Float64,
    "lr": pl.Float64,
    "seconds": pl.Float64,
    "images_per_s": pl.Float64,
}
TRAJECTORY_EPOCHS = [0, 1]  # the pre-trained backbone, then the imported model


def read_state(path: str | Path, key: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The file's tensors (a `state_dict` wrapper and `module.` prefixes taken off) and its safetensors metadata."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{key}.path: no such file: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), "pt") as handle:
                metadata = dict(handle.metadata() or {})
                state = {name: handle.get_tensor(name) for name in handle.keys()}
        else:
            metadata, state = {}, torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # safetensors and torch.load raise their own types on a foreign or truncated file
        raise DataError(f"{key}.path: {path}: not a readable model file ({type(err).__name__}: {err})") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{key}.path: {path}: not a state_dict of tensors")
    return {name.removeprefix("module."): value for name, value in state.items()}, metadata


def split_state(state: dict[str, torch.Tensor], fmt: str) -> tuple[dict, dict, list[str]]:
    """(backbone tensors under the library's key names, head tensors (weight, bias), keys that belong to neither)."""
    backbone, head, other = {}, {}, []
    for name, value in state.items():
        if name.startswith("head."):
            head[name.removeprefix("head.")] = value
        elif fmt == "repdrift":
            if name.startswith("backbone."):
                backbone[name.removeprefix("backbone.")] = value
            else:
                other.append(name)
        elif fmt == "open_clip" and not name.startswith("visual."):
            continue  # the text tower, logit scale, ... of a whole CLIP checkpoint
        else:
            backbone[name] = value
    return backbone, head, other


def _listed(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def check_fit(backbone: torch.nn.Module, tensors: dict[str, torch.Tensor], other: list[str], where: str) -> None:
    """Raise one line naming what of the file does not fit the backbone: missing, unexpected keys, shapes."""
    expected = {name: tuple(value.shape) for name, value in backbone.state_dict().items()}
    missing = [name for name in expected if name not in tensors]
    unexpected = other + [name for name in tensors if name not in expected]
    shapes = [
        f"{name} {tuple(value.shape)} in the file, {expected[name]} in the backbone"
        for name, value in tensors.items()
        if name in expected and tuple(value.shape) != expected[name]
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {_listed(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_listed(unexpected)}")
    if shapes:
        problems.append(f"shapes differ: {_listed(shapes, 2)}")
    if problems:
        raise DataError(f"{where}: {'; '.join(problems)}")


def head_order(
    head: dict[str, torch.Tensor], entry: dict, key: str, fmt: str, classes: list[str], outputs: int, width: int
) -> list[int] | None:
    """The rows of the file's head in the dataset's class order, or None when its head is not used (none, or a
    timm / open_clip head without `classes`)."""
    given = entry.get("classes")
    if not head:
        if given is not None:
            raise ConfigError(f"{key}.classes: given, but {entry['path']} has no head (head.weight, head.bias)")
        return None
    if set(head) != {"weight", "bias"} or head["weight"].ndim != 2 or head["bias"].shape != head["weight"].shape[:1]:
        shapes = {name: tuple(value.shape) for name, value in head.items()}
        raise DataError(f"{key}.path: the head is not one linear layer (head.weight and head.bias): {shapes}")
    rows, columns = head["weight"].shape
    if columns != width:
        raise DataError(f"{key}.path: the head reads {columns} features, the backbone's representation has {width}")
    if rows != outputs:
        raise DataError(
            f"{key}.path: the head has {rows} outputs, but dataset {entry['dataset']!r} has {len(classes)} classes "
            f"({_listed(classes, 8)}){' and so 2 outputs' if outputs != len(classes) else ''}"
        )
    if given is None:
        if fmt != "repdrift":
            print(f"{key}: the file's head is not used: give its label order as {key}.classes to read it")
            return None
        return list(range(rows))  # the workflow's own layout: the dataset's class order
    if len(given) != len(set(given)) or set(given) != set(classes):
        missing = [c for c in classes if c not in given]
        extra = [c for c in given if c not in classes]
        detail = "; ".join(
            part
            for part in (
                f"not classes of the dataset: {_listed(extra, 8)}" if extra else "",
                f"missing: {_listed(missing, 8)}" if missing else "",
                "a class is listed twice" if len(given) != len(set(given)) else "",
            )
            if part
        )
        raise ConfigError(
            f"{key}.classes: not the classes of dataset {entry['dataset']!r} ({_listed(classes, 8)}): {detail}"
        )
    if outputs != len(given):  # a binary dataset read as two outputs, one per class, in the given order
        raise DataError(f"{key}.classes: {len(given)} names for a head of {outputs} outputs")
    return [given.index(name) for name in classes]


def load_external(backbone_cfg: dict, entry: dict, key: str, task: str, classes: list[str]) -> Classifier:
    """The entry's model as a Classifier in the workflow's layout (`head` None when the file's head is not used)."""
    fmt = entry.get("format") or "repdrift"
    if fmt not in FORMATS:
        raise ConfigError(f"{key}.format: {fmt!r} is not one of {', '.join(FORMATS)}")
    library = backbone_cfg["library"]
    if FORMAT_LIBRARY.get(fmt, library) != library:
        raise ConfigError(f"{key}.format: a {fmt} file, but backbone {backbone_cfg['name']!r} is a {library} model")
    state, metadata = read_state(entry["path"], key)
    tensors, head, other = split_state(state, fmt)
    backbone = build_backbone(backbone_cfg, None)
    where = (
        f"{key}.path: {entry['path']} does not fit backbone {backbone_cfg['name']!r} "
        f"({library} {backbone_cfg['arch']}, {backbone.num_layers} blocks of width {backbone.embed_dim})"
    )
    check_fit(backbone, tensors, other, where)
    backbone.load_state_dict(tensors)
    outputs = num_outputs(task, classes)
    order = head_order(head, entry, key, fmt, classes, outputs, backbone.embed_dim)
    pool = entry.get("pool") or "cls"
    if order is not None and metadata.get("pool", pool) != pool:
        raise ConfigError(f"{key}.pool: {pool}, but the file's head reads the {metadata['pool']} pool (its metadata)")
    model = Classifier(backbone, outputs, pool)
    if order is None:
        model.head = None  # no head: model.safetensors holds the backbone only
    else:
        model.head.load_state_dict({name: value[order] for name, value in head.items()})
    return model.eval()


def import_external(
    backbone_cfg: dict,
    weights: str | Path,
    entry: dict,
    key: str,
    dataset_dir: str | Path,
    outputs: RunOutputs,
    batch_size: int,
    cka_samples: int,
    feature_dtype: str,
    knn: dict,
) -> None:
    """Import `entry` (an `external_models` item, `key` its config key: external_models[i]) as a run: the files
    of the module docstring. `weights`: the backbone's pre-trained weights (epoch 0 of the trajectory); `knn` =
    dict(dataset_dir, splits, batch_size); `batch_size`: the test evaluation's, a fine-tune's (train.batch_size)."""
    seed, pool = int(entry.get("seed", 0)), entry.get("pool") or "cls"
    dataset = read_dataset(dataset_dir)
    model = load_external(backbone_cfg, entry, key, dataset.task, dataset.classes)
    loop = _Loop(batch_size, torch.Generator().manual_seed(seed))
    model.to(loop.device)
    pretrained = Classifier(build_backbone(backbone_cfg, weights), 1, pool).to(loop.device).eval()
    test_set, test_ids = test_split(dataset, model.backbone)
    probe = cka_sample(len(test_set), cka_samples)
    images = torch.stack([test_set[int(i)][0] for i in probe])
    before = sample_features(pretrained, images, loop)
    outputs_n = num_outputs(dataset.task, dataset.classes)
    if model.head is not None:
        test_loss, probs, targets, features = evaluate(
            model, loop.loader(test_set, shuffle=False), loop, dataset.task, probe
        )
        print(f"{entry['path']}: test loss {test_loss:.4f}, {len(probs)} test images predicted", flush=True)
        predictions = Predictions(probs, targets, test_ids, dataset.task, dataset.classes)
    else:
        features = sample_features(model, images, loop)
        print(f"{entry['path']}: no head, so no predictions: measured by its representations only", flush=True)
        empty_targets = np.zeros((0, outputs_n) if dataset.task == "multilabel" else (0,), dtype=np.int64)
        predictions = Predictions(
            np.zeros((0, outputs_n)), empty_targets, np.array([], dtype=object), dataset.task, dataset.classes
        )
    write_run(
        outputs,
        model,
        dict(
            format="pt",
            method="external",
            pool=pool,
            seed=str(seed),
            source=str(entry["path"]),
            source_format=entry.get("format") or "repdrift",
            head="yes" if model.head is not None else "no",
        ),
        pl.DataFrame(schema=HISTORY_SCHEMA),
        predictions,
        np.stack([before, features]).astype(feature_dtype),
        test_ids[probe],
        dict(
            pool=pool,
            method="external",
            seed=seed,
            model=backbone_cfg.get("arch", ""),
            epochs=TRAJECTORY_EPOCHS,
            source=str(entry["path"]),
        ),
        feature_dtype,
        knn,
    )
