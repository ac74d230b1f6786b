"""Fine-tuning one run: Full, Linear (frozen backbone) or Scratch (random init), with a CLS or mean-patch head.

Recipe (shared by every run, from the config's `train:`): AdamW, linear warm-up then cosine decay per step,
cross-entropy for multiclass and binary tasks (binary as two classes, as MedFM's colon baseline), BCE for
multi-label. After every epoch the test split is evaluated and the layer-wise features (every block, then the final
representation the head sees) of a fixed CKA sample of it are kept: the trajectory whose CKA to the pre-trained model
the measure rule computes; its last epoch is the final model, so the final CKA is the trajectory's last point. With
`knn`, the final model's representations of the k-NN dataset are extracted too (repdrift.extract), by the job that
holds the model: no second process loads it. On CUDA the same loop runs with bf16 autocast, fused AdamW and
pinned-memory workers. The whole training state is checkpointed (repdrift.checkpoint) after the last epoch and after
any epoch that ends `checkpoint_minutes` or more after the previous checkpoint (0: every epoch), so a killed or
pre-empted job resumes where it stopped and ends with the same result as an uninterrupted one.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from repdrift.atomic import atomic_path
from repdrift.checkpoint import (
    fingerprint,
    load_checkpoint,
    remove_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from repdrift.data import read_dataset
from repdrift.data.loader import ManifestImages, loader_workers
from repdrift.data.manifest import MANIFEST_FILE
from repdrift.errors import DataError, TrainingError
from repdrift.extract import extract_features
from repdrift.failures import clear_failure, record_failure
from repdrift.features import cka_sample, write_trajectory
from repdrift.metrics import mean_average_precision
from repdrift.models import build_backbone
from repdrift.predictions import Predictions, write_predictions
from repdrift.preserving import TRAINED, make_penalty, phases
from repdrift.schedule import warmup_cosine

METHODS = TRAINED


@dataclass(frozen=True)
class Recipe:
    epochs: int = 20
    batch_size: int = 32
    lr: float = 6e-4
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0


class Classifier(nn.Module):
    """A backbone and a linear head on its pooled final representation."""

    def __init__(self, backbone: nn.Module, num_outputs: int, pool: str):
        super().__init__()
        self.backbone = backbone
        self.pool = pool
        self.head = nn.Linear(backbone.embed_dim, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x, self.pool))


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def num_outputs(task: str, classes: list[str]) -> int:
    return 2 if task == "binary" else len(classes)


def load_classifier(backbone_cfg: dict, model_path: str | Path) -> Classifier:
    """Rebuild a fine-tuned model from its model.safetensors (backbone.* and head.* tensors; the pool the head
    reads is in the file's metadata)."""
    with safe_open(str(model_path), "pt") as handle:  # one read: metadata and tensors
        pool = (handle.metadata() or {}).get("pool")
        state = {key: handle.get_tensor(key) for key in handle.keys()}
    if pool is None:
        raise DataError(
            f"{model_path}: no `pool` in the model file's metadata (written by an older repdrift); "
            "run its fine-tune again"
        )
    model = Classifier(build_backbone(backbone_cfg, None), state["head.weight"].shape[0], pool=pool)
    model.load_state_dict(state)
    return model.eval()


class _Loop:
    """Device placement, autocast and loaders for one run."""

    def __init__(self, batch_size: int, generator: torch.Generator):
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.cuda = self.device.type == "cuda"
        self.batch_size = batch_size
        self.generator = generator

    def loader(self, dataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=self.generator if shuffle else None,
            num_workers=loader_workers(),
            pin_memory=self.cuda,
            drop_last=False,
        )

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cuda)


def _loss_fn(task: str) -> nn.Module:
    return nn.BCEWithLogitsLoss() if task == "multilabel" else nn.CrossEntropyLoss()


def _probabilities(logits: torch.Tensor, task: str) -> torch.Tensor:
    return torch.sigmoid(logits) if task == "multilabel" else torch.softmax(logits, dim=1)


def task_metric(probs: np.ndarray, targets: np.ndarray, task: str) -> tuple[str, float]:
    if task == "multilabel":
        return "map", float(mean_average_precision(probs, targets))
    return "accuracy", float((probs.argmax(1) == targets).mean())


@torch.no_grad()
def evaluate(model: Classifier, loader: DataLoader, loop: _Loop, task: str, sample: np.ndarray | None = None):
    """(test loss, probabilities, targets, features of the `sample` rows or None): one forward pass per batch gives
    both the logits and the CKA sample's features (every block, then the head's input), in the run's pool."""
    model.eval()
    losses, probs, targets, kept = [], [], [], []
    loss_fn = _loss_fn(task)
    for images, target, index in loader:
        images, target = images.to(loop.device), target.to(loop.device)
        with loop.autocast():
            reps = model.backbone.representations(images, (model.pool,))[model.pool]
            logits = model.head(reps[-1]).float()
        losses.append(loss_fn(logits, target).item() * len(images))
        probs.append(_probabilities(logits, task).cpu())
        targets.append(target.cpu())
        if sample is not None:
            kept.append(reps[:, np.isin(index.numpy(), sample)].float().cpu())
    probs_np, targets_np = torch.cat(probs).double().numpy(), torch.cat(targets).numpy()
    features = torch.cat(kept, dim=1).numpy() if sample is not None else None
    return sum(losses) / len(probs_np), probs_np, targets_np, features


@torch.no_grad()
def sample_features(model: Classifier, images: torch.Tensor, loop: _Loop) -> np.ndarray:
    """Features (L + 1, n, D) of the CKA sample in the run's pool before fine-tuning (epoch 0; after every epoch
    `evaluate` gives them from its own forward pass): every block, then the head's input."""
    model.eval()
    chunks = []
    for start in range(0, len(images), loop.batch_size):
        batch = images[start : start + loop.batch_size].to(loop.device)
        with loop.autocast():
            chunks.append(model.backbone.representations(batch, (model.pool,))[model.pool].float().cpu())
    return torch.cat(chunks, dim=1).numpy()


class Diverged(Exception):
    """A non-finite training loss at `step` (1-based) of an epoch; `last` is the last finite one before it."""

    def __init__(self, step: int, loss: float, last: float | None):
        super().__init__(step, loss, last)
        self.step, self.loss, self.last = step, loss, last


def train_one_epoch(
    model, loader, optimizer, scheduler, loss_fn, loop: _Loop, desc: str, penalty=None
) -> tuple[int, float]:
    """One pass over the training split; returns (images seen, summed task loss). `penalty(model, z, images)` is
    added to the loss the optimizer sees (repdrift.preserving). Raises Diverged on a non-finite loss (checked on the
    value the loop reads anyway, so a GPU waits no longer than before)."""
    model.train()
    if not any(p.requires_grad for p in model.backbone.parameters()):
        model.backbone.eval()  # frozen (Linear): no dropout / drop-path noise in its features
    seen, loss_sum, last = 0, 0.0, None
    bar = tqdm(loader, desc=desc, leave=False)
    for step, (images, target, _) in enumerate(bar, start=1):
        images, target = images.to(loop.device, non_blocking=True), target.to(loop.device, non_blocking=True)
        with loop.autocast():
            z = model.backbone(images, model.pool)
            loss = loss_fn(model.head(z).float(), target)
            total = loss if penalty is None else loss + penalty(model, z, images)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        scheduler.step()
        value = total.item()
        if not math.isfinite(value):
            raise Diverged(step, value, last)
        last = value
        seen += len(images)
        loss_sum += (value if penalty is None else loss.item()) * len(images)
        bar.set_postfix(loss=f"{value:.3f}")
    return seen, loss_sum


def finetune(
    backbone_cfg: dict,
    weights: str | None,
    dataset_dir: str | Path,
    method: str,
    pool: str,
    seed: int,
    recipe: dict,
    model_out: str | Path,
    history_out: str | Path,
    predictions_out: str | Path,
    trajectory_out: str | Path,
    cka_samples: int = 512,
    checkpoint: str | Path | None = None,
    checkpoint_minutes: float = 0.0,
    feature_dtype: str = "float32",
    knn: dict | None = None,
    method_options: dict | None = None,
    keep_checkpoint: bool = False,
) -> pl.DataFrame:
    """Fine-tune one run and write its four outputs; returns the training history.

    The trajectory holds, before fine-tuning and after every epoch, the features of `cka_samples` test images
    (`cka_sample`), stored as `feature_dtype`. With `checkpoint`, the state is saved there after the last epoch
    and whenever `checkpoint_minutes` have passed since the last save, and a re-run after a kill continues from it.
    `knn` = dict(dataset_dir, out_path, splits, batch_size): the final model's feature file of the k-NN dataset
    (`repdrift.extract.extract_features`, the run's pool). `keep_checkpoint` leaves the last epoch's checkpoint for
    the caller to remove: a job of several runs keeps them until all are written, as a failure deletes all their
    outputs and the re-run then only redoes the last evaluation of the finished ones.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    raw_recipe, recipe = recipe, Recipe(**recipe)
    generator = seed_everything(seed)
    dataset = read_dataset(dataset_dir)
    task, classes = dataset.task, dataset.classes
    start_weights = None if method == "scratch" else weights
    backbone = build_backbone(backbone_cfg, start_weights)
    model = Classifier(backbone, num_outputs(task, classes), pool)
    loop = _Loop(recipe.batch_size, generator)
    model.to(loop.device)
    options = dict(method_options or {})
    plan = phases(method, recipe.epochs, recipe.lr, options)  # one phase, or LP-FT's probe then full
    phase_of = [index for index, phase in enumerate(plan) for _ in range(phase.epochs)]  # per step - 1
    total = len(phase_of)  # epochs trained, LP-FT's probe included
    # LP-FT's probe epochs come before fine-tuning: numbered up to 0 in the history, and not in the trajectory (the
    # backbone is frozen, so each would repeat epoch 0). Its epochs 1..E are fine-tuning, as Full's are.
    before = total - plan[-1].epochs if len(plan) > 1 else 0
    trainable = [p.requires_grad for p in backbone.parameters()]

    def reference() -> nn.Module:  # the frozen pre-trained backbone, built without moving this run's random streams
        with torch.random.fork_rng(devices=[]):
            return build_backbone(backbone_cfg, weights).to(loop.device)

    penalty = make_penalty(method, options, model, reference)

    manifest = dataset.manifest.sort("sample_id")
    # Without loader workers (CPU) the images stay in memory across epochs instead of being decoded again.
    in_process = loader_workers() == 0
    train_set = ManifestImages(
        manifest.filter(pl.col("split") == "train"),
        backbone.transform(True),
        task,
        len(classes),
        keep="decoded" if in_process else None,
    )
    test_manifest = manifest.filter(pl.col("split") == "test")
    test_set = ManifestImages(
        test_manifest, backbone.transform(False), task, len(classes), keep="transformed" if in_process else None
    )
    train_loader, test_loader = loop.loader(train_set, shuffle=True), loop.loader(test_set, shuffle=False)
    probe = cka_sample(len(test_set), cka_samples)

    steps_per_epoch = len(train_loader)

    def start_phase(index: int):
        """Freeze or restore the backbone for phase `index`; a fresh optimizer and schedule for its epochs."""
        kind, epochs, lr = plan[index]
        for param, flag in zip(backbone.parameters(), trainable):
            param.requires_grad_(flag and kind == "full")
        params = [p for p in model.parameters() if p.requires_grad]
        decay = 0.0 if method == "l2sp" else recipe.weight_decay  # L2-SP's penalty replaces weight decay
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=decay, fused=loop.cuda or None)
        schedule = warmup_cosine(epochs * steps_per_epoch, round(recipe.warmup_epochs * steps_per_epoch))
        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)

    loss_fn = _loss_fn(task)

    state = None
    if checkpoint is not None:
        run_id = fingerprint(
            dict(
                backbone=backbone_cfg,
                recipe=asdict(recipe),
                method=method,
                pool=pool,
                seed=seed,
                cka_samples=cka_samples,
                feature_dtype=feature_dtype,
                options=options,
            ),
            dict(weights=start_weights, manifest=Path(dataset_dir) / MANIFEST_FILE),
        )
        state = load_checkpoint(checkpoint, run_id)
    if state is None:
        phase = 0
        optimizer, scheduler = start_phase(phase)
        probe_images = torch.stack([test_set[int(i)][0] for i in probe])
        trajectory, rows, done = [sample_features(model, probe_images, loop).astype(feature_dtype)], [], 0
    else:
        phase = phase_of[state["epoch"] - 1]  # the saved optimizer is that of the last epoch's phase
        optimizer, scheduler = start_phase(phase)
        _load_trainable(model, state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"], generator)
        trajectory, rows, done = [t.numpy() for t in state["trajectory"]], state["history"], state["epoch"]
        print(f"resumed from the checkpoint of epoch {done}/{total}: {checkpoint}", flush=True)

    probs = targets = None
    saved = time.monotonic()
    for step in range(done + 1, total + 1):
        epoch = step - before  # LP-FT's probe: 1 - P .. 0
        started = time.perf_counter()
        try:
            if phase_of[step - 1] != phase:  # LP-FT: the probe is done, fine-tune everything from its head
                phase = phase_of[step - 1]
                optimizer, scheduler = start_phase(phase)
            seen, loss_sum = train_one_epoch(
                model, train_loader, optimizer, scheduler, loss_fn, loop, f"epoch {step}/{total}", penalty
            )
        except Diverged as stop:
            # LP-FT's epochs are said in their phase: probe epoch k of P, or fine-tuning epoch e after the probe.
            where = f"epoch {epoch}" if before == 0 else (
                f"epoch {epoch} (after {before} probe epochs)" if epoch > 0 else f"probe epoch {step} of {before}"
            )  # fmt: skip
            error = _divergence(Path(model_out).parent, where, steps_per_epoch, stop, rows, recipe)
            # A re-run under the same definition would diverge again: recorded, the rest of the study can finish.
            definition = dict(backbone=backbone_cfg, recipe=raw_recipe, options=options)  # rules/common.smk's
            record_failure(Path(model_out).parent, str(error), definition)
            raise error from None
        seconds = time.perf_counter() - started
        # The test loader runs in row order, so the sample's rows come out in `probe` order.
        test_loss, probs, targets, features = evaluate(model, test_loader, loop, task, probe)
        metric, value = task_metric(probs, targets, task)
        # Kept (and checkpointed) in the storage dtype: float16 halves this job's memory and checkpoint too.
        if epoch > 0:
            trajectory.append(features.astype(feature_dtype))
        rows.append(
            dict(
                epoch=epoch,
                train_loss=loss_sum / seen,
                test_loss=test_loss,
                metric=metric,
                test_value=value,
                lr=scheduler.get_last_lr()[0],
                seconds=seconds,
                images_per_s=seen / seconds,
            )
        )
        print(
            f"epoch {epoch}{' (probe)' if epoch <= 0 else ''}: train loss {loss_sum / seen:.4f}, test loss "
            f"{test_loss:.4f}, test {metric} {value:.4f}, {seen / seconds:.0f} images/s",
            flush=True,
        )
        # The last epoch's checkpoint guards what follows it (writing the outputs, the k-NN extraction).
        due = step == total or time.monotonic() - saved >= 60 * checkpoint_minutes
        if checkpoint is not None and due:
            saved = time.monotonic()
            save_checkpoint(
                checkpoint,
                dict(
                    fingerprint=run_id,
                    epoch=step,
                    model=_trainable_state(model),
                    optimizer=optimizer.state_dict(),
                    scheduler=scheduler.state_dict(),
                    rng=rng_state(generator),
                    history=rows,
                    trajectory=[torch.from_numpy(t) for t in trajectory],
                ),
            )
    if probs is None:  # killed after the last epoch's checkpoint: its evaluation is deterministic, redo it
        _, probs, targets, _ = evaluate(model, test_loader, loop, task)

    history = pl.DataFrame(rows)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    record = dict(format="pt", method=method, pool=pool, seed=str(seed))
    with atomic_path(model_out) as tmp:
        save_file(tensors, str(tmp), metadata=record)
    history.write_parquet(history_out)
    write_predictions(
        predictions_out,
        Predictions(probs, targets, test_manifest["sample_id"].to_numpy(), task, classes),
    )
    write_trajectory(
        trajectory_out,
        np.stack(trajectory),
        test_manifest["sample_id"].to_numpy()[probe],
        dict(pool=pool, method=method, seed=seed, model=backbone_cfg.get("arch", "")),
        dtype=feature_dtype,
    )
    if knn is not None:
        extract_features(
            model.backbone,
            knn["dataset_dir"],
            knn["out_path"],
            final_splits=list(knn["splits"]),
            cka_samples=0,
            pools=[pool],
            batch_size=knn["batch_size"],
            dtype=feature_dtype,
            weights_path=model_out,
        )
    if checkpoint is not None and not keep_checkpoint:
        remove_checkpoint(checkpoint)
    clear_failure(Path(model_out).parent)
    return history


def _divergence(run: Path, where: str, steps: int, stop: Diverged, rows: list[dict], recipe: Recipe) -> TrainingError:
    if stop.last is not None:
        last = f"the last finite loss was {stop.last:.4g} (step {stop.step - 1})"
    elif rows:
        last = f"epoch {rows[-1]['epoch']} ended with a mean loss of {rows[-1]['train_loss']:.4g}"
    else:
        last = "no step had a finite loss"
    return TrainingError(
        f"{run}: fine-tuning diverged: the training loss is {stop.loss} at {where}, step {stop.step} of "
        f"{steps}; {last}. Try a smaller train.lr (now {recipe.lr:g}). No outputs were written; the last "
        "checkpoint, if any, stays in checkpoint/ for inspection."
    )


def _trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state without frozen parameters (a Linear run's backbone is rebuilt from its weights file)."""
    # By identity: a Backbone's state_dict renames its keys to the library's, named_parameters does not.
    frozen = {id(p) for p in model.parameters() if not p.requires_grad}
    state = model.state_dict(keep_vars=True)
    return {k: v.detach().cpu().clone() for k, v in state.items() if id(v) not in frozen}


def _load_trainable(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) - frozen:
        raise RuntimeError(f"checkpoint does not fit the model: missing {missing}, unexpected {unexpected}")
