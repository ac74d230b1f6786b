"""Demo pre-training (rule pretrain_demo, `pretrain_on_dataset`): the tiny stand-ins for the paper's three
pre-training paradigms, trained on the train split of a prepared dataset (CLIP's captions made from its class names).

- `supervised`: a timm ViT + linear head, cross-entropy on the class labels (as ViT-B/16 on ImageNet-1k);
- `clip`: an open_clip `CLIP` on captions made from the class names, symmetric InfoNCE with a learned
  temperature (as OpenCLIP on LAION);
- `self_supervised`: DINO self-distillation without labels: student / EMA teacher, centring and sharpening, two
  global crops + small local crops (as DINOv2); the teacher's backbone is saved.

Each writes safetensors under the library's own key names, so `build_backbone(cfg, out_path)` loads it through
the same route as a released checkpoint. Runs are deterministic given the seed (on a fixed thread count).
"""

from __future__ import annotations

import math
import sys
import time
from copy import deepcopy
from pathlib import Path

import polars as pl
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision.transforms import v2
from tqdm import tqdm

from ..data import read_dataset
from ..data.images import load_image
from ..errors import ConfigError, DataError, RepdriftError
from ..training.lr_schedule import warmup_cosine
from .backbone import to_rgb
from .build import backbone_spec, build_backbone, save_backbone_weights
from .dino import DinoHead, DinoLoss, ema_update, teacher_momentum

# Sized for ~1000 images of 32 px and the demo's tiny ViTs (dim 96, 6 blocks, 65 tokens): each run takes about
# 30 s of one CPU thread (~4 s per epoch of plain training; DINO's views make its epochs ~3.5x dearer).
# timm ViTs start from timm's "jax" init (xavier-uniform linears): from scratch and this short, it learns much
# faster than timm's default trunc-normal(0.02) (k-NN on the demo's natural val split 0.80 vs 0.67).
PRETRAIN_DEFAULTS = {
    "supervised": {"epochs": 6, "batch_size": 64, "lr": 2e-3, "weight_decay": 0.05, "weight_init": "jax"},
    "clip": {"epochs": 6, "batch_size": 64, "lr": 2e-3, "weight_decay": 0.05},
    "self_supervised": {
        "epochs": 2,
        "batch_size": 32,
        "lr": 1e-3,
        "weight_decay": 0.04,
        "weight_init": "jax",
        "local_crops": 1,
        "teacher_momentum": 0.96,
        "out_dim": 256,
    },
}
CAPTION_TEMPLATES = (
    "a photo of a {}.",
    "a photo of the {}.",
    "a cropped photo of a {}.",
    "a close-up photo of a {}.",
    "a low resolution photo of a {}.",
    "a blurry photo of the {}.",
)
LIBRARY_OF = {"supervised": "timm", "clip": "open_clip", "self_supervised": "timm"}


def pretrain(
    paradigm: str,
    cfg: dict,
    images,
    labels=None,
    class_names=None,
    out_path=None,
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    progress: bool = True,
    options: dict | None = None,
    device: str | None = None,
) -> dict:
    """Pre-train backbone `cfg` with `paradigm` on `images` and write its weights to `out_path`.

    images: a sequence of PIL images (or image paths, or uint8 CHW tensors), or a torch Dataset yielding
    (image, label) pairs (then `labels` is taken from it). labels: class indices (`supervised`, `clip`).
    class_names: the captions' nouns (`clip`; `supervised` takes the class count from it).
    epochs, batch_size, lr: None = PRETRAIN_DEFAULTS[paradigm]; options: any other key of those defaults
    (weight_decay, weight_init; DINO's local_crops, teacher_momentum, out_dim). device: default CUDA when
    available (augmentation stays on the CPU).
    Returns the history {"epoch", "loss", "lr", "seconds"}, one value per epoch.
    """
    spec = backbone_spec(cfg)
    if paradigm not in LIBRARY_OF:
        raise ConfigError(f"unknown pre-training paradigm {paradigm!r} (expected one of {', '.join(LIBRARY_OF)})")
    if spec["paradigm"] != paradigm:
        raise ConfigError(f"backbone {spec['name']!r} has paradigm {spec['paradigm']!r}, not {paradigm!r}")
    if spec["library"] != LIBRARY_OF[paradigm]:
        raise ConfigError(f"backbone {spec['name']!r}: {paradigm} pre-training needs library {LIBRARY_OF[paradigm]}")
    if out_path is None:
        raise ConfigError("pretrain needs out_path")
    settings = dict(PRETRAIN_DEFAULTS[paradigm])
    settings.update({k: v for k, v in dict(epochs=epochs, batch_size=batch_size, lr=lr).items() if v is not None})
    for key, value in (options or {}).items():
        if key not in settings:
            raise ConfigError(f"unknown {paradigm} pre-training option {key!r} (known: {', '.join(settings)})")
        settings[key] = value

    torch.manual_seed(seed)
    pixels, targets = _as_tensors(images, labels)
    if paradigm != "self_supervised" and targets is None:
        raise DataError(f"{paradigm} pre-training needs labels")
    objective = OBJECTIVES[paradigm](spec, targets, class_names, settings)
    objective.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    objective.everything.to(objective.device)
    history = _fit(objective, pixels, targets, settings, seed, progress, desc=f"pretrain {spec['name']}")
    objective.save(
        out_path, metadata=dict(paradigm=paradigm, arch=spec["arch"], seed=seed, images=len(pixels), **settings)
    )
    return history


class Supervised:
    device = torch.device("cpu")

    def __init__(self, spec, labels, class_names, settings):
        self.backbone = build_backbone(_with_kwargs(spec, weight_init=settings["weight_init"]), None)
        classes = len(class_names) if class_names else int(labels.max()) + 1
        self.head = nn.Linear(self.backbone.embed_dim, classes)
        self.modules = self.everything = nn.ModuleList([self.backbone, self.head])
        self.augment = self.backbone.transform(train=True)

    def loss(self, pixels, labels):
        logits = self.head(self.backbone(_batch(self.augment, pixels, self.device)))
        return F.cross_entropy(logits, labels.to(self.device), label_smoothing=0.1)

    def after_step(self, progress: float) -> None:
        pass

    def save(self, path, metadata):
        save_backbone_weights(self.backbone, path, metadata)  # the head is not part of the backbone


class Clip:
    device = torch.device("cpu")

    def __init__(self, spec, labels, class_names, settings):
        import open_clip

        from .open_clip_backbone import create_clip, wrap_visual

        if not class_names:
            raise DataError("clip pre-training needs class_names for its captions")
        self.model = create_clip(spec, None)
        self.modules = self.everything = self.model
        self.augment = wrap_visual(spec, self.model).transform(train=True)
        captions = [t.format(str(name).replace("_", " ")) for name in class_names for t in CAPTION_TEMPLATES]
        tokens = open_clip.get_tokenizer(spec["arch"])(captions)  # the bundled BPE vocabulary: offline
        self.tokens = tokens.view(len(class_names), len(CAPTION_TEMPLATES), -1)

    def loss(self, pixels, labels):
        template = torch.randint(len(CAPTION_TEMPLATES), (len(labels),))
        image = self.model.encode_image(_batch(self.augment, pixels, self.device), normalize=True)
        text = self.model.encode_text(self.tokens[labels, template].to(self.device), normalize=True)
        logits = self.model.logit_scale.exp() * image @ text.T
        target = torch.arange(len(labels), device=self.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2

    def after_step(self, progress: float) -> None:
        with torch.no_grad():  # as open_clip's training loop: temperature at most 100
            self.model.logit_scale.clamp_(0, math.log(100))

    def save(self, path, metadata):
        save_backbone_weights(self.model, path, metadata)  # the whole CLIP, as a released checkpoint


class Dino:
    device = torch.device("cpu")

    def __init__(self, spec, labels, class_names, settings):
        self.local_crops, self.base_momentum = settings["local_crops"], settings["teacher_momentum"]
        # Local crops are smaller than img_size: let timm resample position embeddings on the fly.
        self.student = build_backbone(
            _with_kwargs(spec, weight_init=settings["weight_init"], dynamic_img_size=True), None
        )
        self.teacher = deepcopy(self.student).requires_grad_(False)
        self.student_head = DinoHead(self.student.embed_dim, settings["out_dim"])
        self.teacher_head = deepcopy(self.student_head).requires_grad_(False)
        self.criterion = DinoLoss(settings["out_dim"])
        self.modules = nn.ModuleList([self.student, self.student_head])
        self.everything = nn.ModuleList([self.modules, self.teacher, self.teacher_head, self.criterion])
        size, norm = self.student.img_size, v2.Normalize(self.student.mean, self.student.std)
        self.global_view = _dino_view(size, (0.35, 1.0), norm)
        self.local_view = _dino_view(max(self.student.patch_size, size // 2), (0.1, 0.35), norm)

    def loss(self, pixels, labels):
        n = len(pixels)
        views = torch.cat([_batch(self.global_view, pixels, self.device) for _ in range(2)])
        student = list(self.student_head(self.student(views)).split(n))
        if self.local_crops:
            local = torch.cat([_batch(self.local_view, pixels, self.device) for _ in range(self.local_crops)])
            student += list(self.student_head(self.student(local)).split(n))
        with torch.no_grad():
            teacher = list(self.teacher_head(self.teacher(views)).split(n))
        return self.criterion(student, teacher)

    def after_step(self, progress: float) -> None:
        momentum = teacher_momentum(progress, self.base_momentum)
        ema_update(self.teacher, self.student, momentum)
        ema_update(self.teacher_head, self.student_head, momentum)

    def save(self, path, metadata):
        save_backbone_weights(self.teacher, path, metadata)  # DINO evaluates (and releases) the teacher


OBJECTIVES = {"supervised": Supervised, "clip": Clip, "self_supervised": Dino}


def _with_kwargs(spec: dict, **kwargs) -> dict:
    """`spec` with constructor kwargs that shape training only (the saved weights load without them)."""
    return spec | {"model_kwargs": spec["model_kwargs"] | kwargs}


def _dino_view(size: int, scale, normalize) -> v2.Compose:
    return v2.Compose(
        [
            v2.RandomResizedCrop(size, scale=scale, interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
            v2.RandomGrayscale(p=0.2),
            v2.ToDtype(torch.float32, scale=True),
            normalize,
        ]
    )


def _fit(objective, pixels, labels, settings: dict, seed: int, progress: bool, desc: str) -> dict:
    """AdamW with linear warm-up and cosine decay; one tqdm bar per epoch; a seeded, fixed data order."""
    params = [p for p in objective.modules.parameters() if p.requires_grad]
    # No weight decay on norms, biases and 1-d embeddings, as timm / DINO do.
    groups = [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": settings["weight_decay"]},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=settings["lr"])
    n, batch_size, epochs = len(pixels), settings["batch_size"], settings["epochs"]
    per_epoch = max(1, n // batch_size)  # the last partial batch is dropped: contrastive losses want full ones
    total = epochs * per_epoch
    warmup = max(1, total // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total, warmup))
    order_rng = torch.Generator().manual_seed(seed)
    history = {"epoch": [], "loss": [], "lr": [], "seconds": []}
    objective.modules.train()
    step = 0
    for epoch in range(1, epochs + 1):
        start, losses = time.perf_counter(), []
        order = torch.randperm(n, generator=order_rng)
        batches = [order[i * batch_size : (i + 1) * batch_size] for i in range(per_epoch)]
        bar = tqdm(
            batches,
            desc=f"{desc} epoch {epoch}/{epochs}",
            file=sys.stderr,
            disable=not progress,
            mininterval=1.0,
            dynamic_ncols=True,
        )
        for index in bar:
            loss = objective.loss([pixels[i] for i in index], None if labels is None else labels[index])
            if not torch.isfinite(loss):
                raise RepdriftError(f"{desc}: loss became {loss.item()} at epoch {epoch}; lower the learning rate")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 3.0)
            optimizer.step()
            schedule.step()
            step += 1
            objective.after_step(step / total)
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
        bar.close()
        history["epoch"].append(epoch)
        history["loss"].append(sum(losses) / len(losses))
        history["lr"].append(optimizer.param_groups[0]["lr"])
        history["seconds"].append(time.perf_counter() - start)
    return history


def _batch(transform, pixels: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    return torch.stack([transform(p) for p in pixels]).to(device)


def _as_tensors(images, labels):
    """Images as uint8 CHW RGB tensors (decoded once; augmentations run on them) and labels as a LongTensor."""
    if isinstance(images, torch.utils.data.Dataset):
        pairs = [images[i] for i in range(len(images))]
        images, labels = [p[0] for p in pairs], [int(p[1]) for p in pairs]
    if len(images) == 0:
        raise DataError("pre-training got no images")
    pixels = [_to_uint8(image) for image in images]
    if labels is None:
        return pixels, None
    labels = torch.as_tensor(list(labels), dtype=torch.long)
    if len(labels) != len(pixels):
        raise DataError(f"pre-training got {len(pixels)} images but {len(labels)} labels")
    return pixels, labels


def _to_uint8(image) -> torch.Tensor:
    if isinstance(image, (str, Path)):
        with Image.open(image) as opened:
            image = opened.convert("RGB")
    if isinstance(image, Image.Image):
        return v2.functional.pil_to_tensor(to_rgb(image))
    if isinstance(image, torch.Tensor) and image.dtype == torch.uint8 and image.ndim == 3 and image.shape[0] == 3:
        return image
    raise DataError(f"pre-training images must be PIL images, paths or uint8 (3, H, W) tensors, got {type(image)}")


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
