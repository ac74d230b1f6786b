"""Fine-tuning one run: Full, Linear (frozen backbone) or Scratch (random init), with a CLS or mean-patch head.

Recipe (shared by every run, from the config's `train:`): AdamW, linear warm-up then cosine decay per step,
cross-entropy for multiclass and binary tasks (binary as two classes, as MedFM's colon baseline), BCE for
multi-label. After every epoch the test split is evaluated and the layer-wise features (every block, then the final
representation the head sees) of a fixed CKA sample of it are kept: the trajectory whose CKA to the pre-trained model
the measure rule computes; its last epoch is the final model, so the final CKA is the trajectory's last point. With
`knn`, the final model's representations of the k-NN dataset are extracted too (repdrift.measurement.extract), by the
job that holds the model: no second process loads it. On CUDA the same loop runs with bf16 autocast, fused AdamW and
pinned-memory workers. The whole training state is checkpointed (repdrift.training.checkpoint) after the last epoch and
after any epoch that ends `checkpoint_minutes` or more after the previous checkpoint (0: every epoch), so a killed or
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

from repdrift.data import Dataset, read_dataset
from repdrift.data.loader import ManifestImages, loader_workers
from repdrift.data.manifest import MANIFEST_FILE
from repdrift.errors import DataError, TrainingError
from repdrift.formats.atomic import atomic_path
from repdrift.formats.features import cka_sample, write_trajectory
from repdrift.formats.predictions import Predictions, write_predictions
from repdrift.measurement.extract import FeatureSource, extract_features
from repdrift.measurement.weight_change import block_weights, write_weight_change
from repdrift.metrics import mean_average_precision
from repdrift.models import build_backbone
from repdrift.study import METHODS, base_method, run_definition
from repdrift.study.failures import clear_failure, record_failure
from repdrift.training.checkpoint import (
    fingerprint,
    load_checkpoint,
    remove_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from repdrift.training.lr_schedule import warmup_cosine
from repdrift.training.parameter_efficient import Adapters, freeze_for
from repdrift.training.preserving import Phase, make_penalty, phases

# What this module trains: the registry's methods of kind `trained` and `probe` (Linear).
TRAINED = tuple(name for name, method in METHODS.items() if method.kind in ("trained", "probe"))


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
    """A non-finite training loss at `step` (1-based) of an epoch; `last` is the last finite one before it. The
    epoch loop sets `at`: the run's epoch it happened in (LP-FT's probe epochs included)."""

    def __init__(self, step: int, loss: float, last: float | None):
        super().__init__(step, loss, last)
        self.step, self.loss, self.last = step, loss, last
        self.at: int | None = None


def train_one_epoch(
    model, loader, optimizer, scheduler, loss_fn, loop: _Loop, desc: str, penalty=None
) -> tuple[int, float]:
    """One pass over the training split; returns (images seen, summed task loss). `penalty(model, z, images)` is
    added to the loss the optimizer sees (repdrift.training.preserving). Raises Diverged on a non-finite loss (checked
    on the value the loop reads anyway, so a GPU waits no longer than before)."""
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


@dataclass(frozen=True)
class RunOutputs:
    """Where a run's files go, named as the rules' outputs. `natural`: the model's features of the k-NN dataset,
    for a run whose backbone moved (a Linear run's k-NN reads the pre-trained model's). `weight_change`: the change of
    its block matrices since the run started (repdrift.measurement.weight_change), for a trained run."""

    model: str | Path
    history: str | Path
    predictions: str | Path
    trajectory: str | Path
    natural: str | Path | None = None
    weight_change: str | Path | None = None

    @property
    def run_dir(self) -> Path:
        return Path(self.model).parent


def write_run(
    outputs: RunOutputs,
    model: Classifier,
    metadata: dict[str, str],
    history: pl.DataFrame,
    predictions: Predictions,
    trajectory: np.ndarray,
    sample_ids: np.ndarray,
    attrs: dict,
    dtype: str,
    knn: dict | None = None,
    knn_source: FeatureSource | None = None,
    initial: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write a finished run's files, the same for a fine-tune and a weight-space ensemble (repdrift.training.wiseft), so
    every measurement reads either: the model with `metadata`, the history, the test predictions, the trajectory
    (the CKA sample `sample_ids`' features, (epochs, L + 1, n, D), with `attrs`, stored as `dtype`) and, with
    `outputs.natural`, the model's features of the k-NN dataset `knn` = dict(dataset_dir, splits, batch_size) in its
    pool (`knn_source`: that dataset's images shared by several models,
    `repdrift.measurement.extract.feature_source`). With `outputs.weight_change`, the change of the backbone's block
    matrices since `initial` (their `block_weights` when the run started)."""
    if (initial is None) != (outputs.weight_change is None):
        raise ValueError("write_run: initial (the weights before) and outputs.weight_change go together")
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(outputs.model) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    history.write_parquet(outputs.history)
    write_predictions(outputs.predictions, predictions)
    write_trajectory(outputs.trajectory, trajectory, sample_ids, attrs, dtype=dtype)
    if outputs.weight_change is not None:
        write_weight_change(initial, model.backbone, outputs.weight_change)
    if outputs.natural is not None:
        extract_features(
            model.backbone,
            knn["dataset_dir"],
            outputs.natural,
            final_splits=list(knn["splits"]),
            cka_samples=0,
            pools=[model.pool],
            batch_size=knn["batch_size"],
            dtype=dtype,
            weights_path=outputs.model,
            source=knn_source,
        )


def finetune(
    backbone_cfg: dict,
    weights: str | None,
    dataset_dir: str | Path,
    method: str,
    pool: str,
    seed: int,
    recipe: dict,
    outputs: RunOutputs,
    cka_samples: int = 512,
    checkpoint: str | Path | None = None,
    checkpoint_minutes: float = 0.0,
    feature_dtype: str = "float32",
    knn: dict | None = None,
    method_options: dict | None = None,
) -> pl.DataFrame:
    """Fine-tune one run and write its outputs (`write_run`); returns the training history.

    The trajectory holds, before fine-tuning and after every epoch, the features of `cka_samples` test images
    (`cka_sample`), stored as `feature_dtype`. With `checkpoint`, the state is saved there after the last epoch
    and whenever `checkpoint_minutes` have passed since the last save, a re-run after a kill continues from it, and
    it is removed once the outputs are written. `knn` = dict(dataset_dir, splits, batch_size), given exactly when
    `outputs.natural` is: the k-NN dataset whose features of the final model
    (`repdrift.measurement.extract.extract_features`, the run's pool) go there.
    """
    if base_method(method) not in TRAINED:  # a swept method's run (lora8) trains as its method (lora)
        raise ValueError(f"method must be one of {TRAINED} (a swept one with its value), got {method!r}")
    if (knn is None) != (outputs.natural is None):
        raise ValueError("finetune: knn (the k-NN dataset) and outputs.natural (its feature file) go together")
    options = dict(method_options or {})
    run = _setup(
        backbone_cfg, weights, dataset_dir, base_method(method), pool, seed, Recipe(**recipe), cka_samples, options
    )
    checkpoints = None
    if checkpoint is not None:
        spec = dict(
            backbone=backbone_cfg,
            recipe=asdict(run.recipe),
            method=method,
            pool=pool,
            seed=seed,
            cka_samples=cka_samples,
            feature_dtype=feature_dtype,
            options=options,
        )
        files = dict(weights=None if method == "scratch" else weights, manifest=Path(dataset_dir) / MANIFEST_FILE)
        checkpoints = _Checkpoints(checkpoint, checkpoint_minutes, fingerprint(spec, files))
    progress = _resume(run, checkpoints) or _start(run, feature_dtype)
    try:
        probs, targets = _train_epochs(run, progress, checkpoints, feature_dtype)
    except Diverged as stop:
        definition = run_definition(backbone_cfg, recipe, options)  # the study's (repdrift.study)
        raise _diverged(outputs.run_dir, run, stop, progress.rows, definition) from None
    if probs is None:  # killed after the last epoch's checkpoint: its evaluation is deterministic, redo it
        _, probs, targets, _ = evaluate(run.model, run.data.test, run.loop, run.data.task)
    if run.adapters is not None:  # LoRA: an ordinary backbone from here on (the k-NN features, the saved model)
        run.adapters.merge()
    history = pl.DataFrame(progress.rows)
    write_run(
        outputs,
        run.model,
        dict(format="pt", method=method, pool=pool, seed=str(seed)),
        history,
        Predictions(probs, targets, run.data.test_ids, run.data.task, run.data.classes),
        np.stack(progress.trajectory),
        run.data.test_ids[run.data.probe],
        dict(pool=pool, method=method, seed=seed, model=backbone_cfg.get("arch", "")),
        feature_dtype,
        knn,
        initial=run.initial if outputs.weight_change is not None else None,
    )
    if checkpoint is not None:
        remove_checkpoint(checkpoint)
    clear_failure(outputs.run_dir)
    return history


@dataclass(frozen=True)
class _Data:
    """A run's dataset through its loaders: the train split shuffled, the test split in sample_id order."""

    task: str
    classes: list[str]
    train: DataLoader
    test: DataLoader
    test_ids: np.ndarray  # sample_id of the test loader's rows
    probe: np.ndarray  # the CKA sample: rows of the test split


def test_split(dataset: Dataset, backbone: nn.Module) -> tuple[ManifestImages, np.ndarray]:
    """The test split as every evaluation reads it (rows by sample_id; without loader workers, on CPU, its
    transformed images stay in memory across epochs) and its sample ids."""
    test = dataset.manifest.sort("sample_id").filter(pl.col("split") == "test")
    keep = "transformed" if loader_workers() == 0 else None
    images = ManifestImages(test, backbone.transform(False), dataset.task, len(dataset.classes), keep=keep)
    return images, test["sample_id"].to_numpy()


def _load_data(dataset: Dataset, backbone: nn.Module, loop: _Loop, cka_samples: int) -> _Data:
    task, classes = dataset.task, dataset.classes
    # Without loader workers (CPU) the images stay in memory across epochs instead of being decoded again.
    train_set = ManifestImages(
        dataset.manifest.sort("sample_id").filter(pl.col("split") == "train"),
        backbone.transform(True),
        task,
        len(classes),
        keep="decoded" if loader_workers() == 0 else None,
    )
    test_set, test_ids = test_split(dataset, backbone)
    train_loader, test_loader = loop.loader(train_set, shuffle=True), loop.loader(test_set, shuffle=False)
    probe = cka_sample(len(test_set), cka_samples)
    return _Data(task, classes, train_loader, test_loader, test_ids, probe)


@dataclass(frozen=True)
class _Run:
    """One fine-tune as built before its first epoch. `plan` is one phase, or LP-FT's probe then full fine-tuning;
    `phase_of[step - 1]` is the phase of epoch `step`."""

    method: str
    recipe: Recipe
    model: Classifier
    loop: _Loop
    generator: torch.Generator
    data: _Data
    plan: list[Phase]
    phase_of: list[int]
    trainable: list[bool]  # which backbone parameters a full phase trains
    penalty: object | None
    adapters: Adapters | None  # LoRA's, merged into the backbone when training ends
    initial: dict[str, torch.Tensor]  # the block matrices as built (W_0 of repdrift.measurement.weight_change), on CPU

    @property
    def total(self) -> int:
        """Epochs trained, LP-FT's probe included."""
        return len(self.phase_of)

    @property
    def before(self) -> int:
        """LP-FT's probe epochs. They come before fine-tuning: numbered up to 0 in the history, and not in the
        trajectory (the backbone is frozen, so each would repeat epoch 0). Its epochs 1..E are fine-tuning, as
        Full's are."""
        return self.total - self.plan[-1].epochs if len(self.plan) > 1 else 0

    def start_phase(self, index: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
        """Freeze or restore the backbone for phase `index`; a fresh optimizer and schedule for its epochs."""
        kind, epochs, lr = self.plan[index]
        for param, flag in zip(self.model.backbone.parameters(), self.trainable):
            param.requires_grad_(flag and kind == "full")
        params = [p for p in self.model.parameters() if p.requires_grad]
        decay = 0.0 if self.method == "l2sp" else self.recipe.weight_decay  # L2-SP's penalty replaces weight decay
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=decay, fused=self.loop.cuda or None)
        steps = len(self.data.train)
        schedule = warmup_cosine(epochs * steps, round(self.recipe.warmup_epochs * steps))
        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def _setup(
    backbone_cfg: dict,
    weights: str | None,
    dataset_dir: str | Path,
    method: str,
    pool: str,
    seed: int,
    recipe: Recipe,
    cka_samples: int,
    options: dict,
) -> _Run:
    # Seeded first, then every random draw in a fixed order (backbone, head): runs of one seed share their head.
    generator = seed_everything(seed)
    dataset = read_dataset(dataset_dir)
    backbone = build_backbone(backbone_cfg, None if method == "scratch" else weights)
    initial = block_weights(backbone)  # before any adapter; a resumed run rebuilds the same one here
    model = Classifier(backbone, num_outputs(dataset.task, dataset.classes), pool)
    loop = _Loop(recipe.batch_size, generator)
    model.to(loop.device)
    plan = phases(method, recipe.epochs, recipe.lr, options)
    phase_of = [index for index, phase in enumerate(plan) for _ in range(phase.epochs)]
    adapters = freeze_for(method, options, backbone)  # LoRA, BitFit, partial: what of the backbone trains
    trainable = [p.requires_grad for p in backbone.parameters()]

    def reference() -> nn.Module:  # the frozen pre-trained backbone, built without moving this run's random streams
        with torch.random.fork_rng(devices=[]):
            return build_backbone(backbone_cfg, weights).to(loop.device)

    penalty = make_penalty(method, options, model, reference)
    data = _load_data(dataset, backbone, loop, cka_samples)
    return _Run(method, recipe, model, loop, generator, data, plan, phase_of, trainable, penalty, adapters, initial)


@dataclass
class _Progress:
    """Training after `done` epochs: the phase with its optimizer and schedule, the history rows and the trajectory
    so far (in the storage dtype: float16 halves this job's memory and checkpoint too)."""

    done: int
    phase: int
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    rows: list[dict]
    trajectory: list[np.ndarray]


def _start(run: _Run, feature_dtype: str) -> _Progress:
    """Before the first epoch: the first phase, and the CKA sample's features (epoch 0 of the trajectory)."""
    optimizer, scheduler = run.start_phase(0)
    images = torch.stack([run.data.test.dataset[int(i)][0] for i in run.data.probe])
    features = sample_features(run.model, images, run.loop).astype(feature_dtype)
    return _Progress(0, 0, optimizer, scheduler, [], [features])


@dataclass(frozen=True)
class _Checkpoints:
    """The run's checkpoint file, saved every `minutes` (0: every epoch) and after the last epoch, under `run_id`:
    the fingerprint of everything the run's result depends on, so a changed run ignores an older run's state."""

    path: str | Path
    minutes: float
    run_id: str

    def save(self, run: _Run, progress: _Progress) -> None:
        state = dict(
            fingerprint=self.run_id,
            epoch=progress.done,
            model=_trainable_state(run.model, frozen=run.adapters is not None),
            optimizer=progress.optimizer.state_dict(),
            scheduler=progress.scheduler.state_dict(),
            rng=rng_state(run.generator),
            history=progress.rows,
            trajectory=[torch.from_numpy(t) for t in progress.trajectory],
        )
        save_checkpoint(self.path, state)


def _resume(run: _Run, checkpoints: _Checkpoints | None) -> _Progress | None:
    """The progress saved in this run's checkpoint, restored into `run`; None when there is none."""
    state = None if checkpoints is None else load_checkpoint(checkpoints.path, checkpoints.run_id)
    if state is None:
        return None
    done = state["epoch"]
    phase = run.phase_of[done - 1]  # the saved optimizer is that of the last epoch's phase
    optimizer, scheduler = run.start_phase(phase)
    _load_trainable(run.model, state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"], run.generator)
    print(f"resumed from the checkpoint of epoch {done}/{run.total}: {checkpoints.path}", flush=True)
    trajectory = [t.numpy() for t in state["trajectory"]]
    return _Progress(done, phase, optimizer, scheduler, state["history"], trajectory)


def _train_epochs(run: _Run, progress: _Progress, checkpoints: _Checkpoints | None, feature_dtype: str):
    """Train the epochs after `progress.done`, checkpointing as due; returns the last epoch's test (probabilities,
    targets), or (None, None) when no epoch was left."""
    probs = targets = None
    saved = time.monotonic()
    for step in range(progress.done + 1, run.total + 1):
        probs, targets = _train_epoch(run, progress, step, feature_dtype)
        # The last epoch's checkpoint guards what follows it (writing the outputs, the k-NN extraction).
        if checkpoints is not None and (step == run.total or time.monotonic() - saved >= 60 * checkpoints.minutes):
            saved = time.monotonic()
            checkpoints.save(run, progress)
    return probs, targets


def _train_epoch(run: _Run, progress: _Progress, step: int, feature_dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Train epoch `step` (1-based, LP-FT's probe included), evaluate it and add it to `progress`; returns the test
    (probabilities, targets)."""
    started = time.perf_counter()
    if run.phase_of[step - 1] != progress.phase:  # LP-FT: the probe is done, fine-tune everything from its head
        progress.phase = run.phase_of[step - 1]
        progress.optimizer, progress.scheduler = run.start_phase(progress.phase)
    loss_fn, desc = _loss_fn(run.data.task), f"epoch {step}/{run.total}"
    try:
        seen, loss_sum = train_one_epoch(
            run.model, run.data.train, progress.optimizer, progress.scheduler, loss_fn, run.loop, desc, run.penalty
        )
    except Diverged as stop:
        stop.at = step
        raise
    seconds = time.perf_counter() - started
    # The test loader runs in row order, so the sample's rows come out in `probe` order.
    test_loss, probs, targets, features = evaluate(run.model, run.data.test, run.loop, run.data.task, run.data.probe)
    metric, value = task_metric(probs, targets, run.data.task)
    epoch = step - run.before  # LP-FT's probe: 1 - P .. 0
    if epoch > 0:
        progress.trajectory.append(features.astype(feature_dtype))
    progress.rows.append(
        dict(
            epoch=epoch,
            train_loss=loss_sum / seen,
            test_loss=test_loss,
            metric=metric,
            test_value=value,
            lr=progress.scheduler.get_last_lr()[0],
            seconds=seconds,
            images_per_s=seen / seconds,
        )
    )
    progress.done = step
    print(
        f"epoch {epoch}{' (probe)' if epoch <= 0 else ''}: train loss {loss_sum / seen:.4f}, test loss "
        f"{test_loss:.4f}, test {metric} {value:.4f}, {seen / seconds:.0f} images/s",
        flush=True,
    )
    return probs, targets


def _diverged(run_dir: Path, run: _Run, stop: Diverged, rows: list[dict], definition: dict) -> TrainingError:
    """The one-line error of a diverged run, recorded in `run_dir` under `definition`: a re-run under the same
    definition would diverge again, so the rest of the study can finish without it."""
    epoch = stop.at - run.before
    # LP-FT's epochs are said in their phase: probe epoch k of P, or fine-tuning epoch e after the probe.
    where = f"epoch {epoch}" if run.before == 0 else (
        f"epoch {epoch} (after {run.before} probe epochs)" if epoch > 0 else f"probe epoch {stop.at} of {run.before}"
    )  # fmt: skip
    if stop.last is not None:
        last = f"the last finite loss was {stop.last:.4g} (step {stop.step - 1})"
    elif rows:
        last = f"epoch {rows[-1]['epoch']} ended with a mean loss of {rows[-1]['train_loss']:.4g}"
    else:
        last = "no step had a finite loss"
    error = TrainingError(
        f"{run_dir}: fine-tuning diverged: the training loss is {stop.loss} at {where}, step {stop.step} of "
        f"{len(run.data.train)}; {last}. Try a smaller train.lr (now {run.recipe.lr:g}). No outputs were written; "
        "the last checkpoint, if any, stays in checkpoint/ for inspection."
    )
    record_failure(run_dir, str(error), definition)
    return error


def _trainable_state(model: nn.Module, frozen: bool = False) -> dict[str, torch.Tensor]:
    """The model's state without frozen parameters (a Linear run's backbone is rebuilt from its weights file), or
    with them (`frozen`: LoRA, as peft adapts open_clip's nn.MultiheadAttention by merging its adapter into the
    frozen in_proj / out_proj weights for each forward and unmerging it after, so they drift by rounding)."""
    # By identity: a Backbone's state_dict renames its keys to the library's, named_parameters does not.
    frozen = set() if frozen else {id(p) for p in model.parameters() if not p.requires_grad}
    state = model.state_dict(keep_vars=True)
    return {k: v.detach().cpu().clone() for k, v in state.items() if id(v) not in frozen}


def _load_trainable(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) - frozen:
        raise RuntimeError(f"checkpoint does not fit the model: missing {missing}, unexpected {unexpected}")
