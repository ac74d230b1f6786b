"""GPU check: the workflow's fine-tuning and feature-extraction throughput vs the same model's bare loop.

    .venv/bin/python benchmarks/gpu_check.py                    # one GPU: ViT-B/16, 224 px, batches 32/256, < 3 min
    .venv/bin/python benchmarks/gpu_check.py --device cpu --steps 2 --img-size 32      # ViT-B on CPU, ~1 min
    .venv/bin/python benchmarks/gpu_check.py --device cpu --steps 2 --img-size 32 --tiny   # smoke test, seconds

Model: timm `vit_base_patch16_224` (the vit_b16 architecture), random init: nothing is downloaded.
Measured, in images/s:
- fine-tune, workflow: `repdrift.training.finetune.finetune` itself (method full, CLS head) on an ISIC 2018-layout
dataset
  of synthetic 600x450 JPEGs (ISIC's size) read through `repdrift.data` (adapter -> manifest -> DataLoader with
  the backbone's augmentation). Two epochs of `--steps` batches; the second epoch's train-loop rate from the run's
  history counts (the first pays for cuDNN / kernel warm-up). Per epoch it includes starting the loader workers.
- features, workflow: `repdrift.measurement.extract.extract_features` on the same images (eval transform, both pools,
streamed
  into a feature file as the extraction rules do) at the paper's feature batch size, second pass.
- the bare loops: the same model on a synthetic tensor already on the device, with the workflow's choices
  (bf16 autocast, fused AdamW, cross-entropy; for features the same one-pass `representations` call):
  no data loading, no scheduler, no host copies.
The ratio workflow / bare is what data loading and bookkeeping cost (1.0 = nothing; the target for features is
>= 0.9). On a GPU it also reports the peak GPU memory of the fine-tuning and of the extraction at these batch sizes
(the paper's: 32 and 256). `--json` writes the numbers.

Then the cost of parameter-efficient fine-tuning against Full (benchmarks/peft_cost.py, issue 23): the bare training
step of Full, LoRA (ranks 8 and 32), BitFit and partial (top 3 blocks) at the same image size and batch, images/s and
peak GPU memory as ratios to Full, `--peft-steps` timed steps each (default 30, 0 skips it), two interleaved rounds
(under a minute on an H100). On CPU (the smoke test) it runs in this process, without memory figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--steps", type=int, default=100, help="timed steps per measurement (default 100)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps of the bare loops (default 10)")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32, help="fine-tuning batch (the paper's 32)")
    parser.add_argument("--feature-batch-size", type=int, default=256, help="extraction batch (paper config: 256)")
    parser.add_argument("--tiny", action="store_true", help="smoke test: a 2-block, 32-wide ViT, not ViT-B")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--workdir", type=Path, help="keep the synthetic dataset and run outputs here")
    parser.add_argument("--peft-steps", type=int, default=30, help="peft_cost.py's timed steps (0: skip it)")
    parser.add_argument("--peft-repeats", type=int, default=2, help="peft_cost.py's rounds (default 2)")
    return parser.parse_args(argv)


ARCH = {"library": "timm", "arch": "vit_base_patch16_224", "paradigm": "supervised", "name": "vit_b16"}
TINY = {"patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}


def write_images(root: Path, n_train: int, n_test: int) -> Path:
    """ISIC 2018 Task 3 layout with n_train / 7 / n_test synthetic 600x450 JPEGs, varied from bundled photos."""
    import numpy as np
    from PIL import Image
    from skimage import data as photos

    classes = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    bases = [
        Image.fromarray(f()).convert("RGB").resize((600, 450))
        for f in (photos.astronaut, photos.chelsea, photos.coffee, photos.rocket)
    ]
    rng = np.random.default_rng(0)
    next_id = 24306
    for part, n in (("Training", n_train), ("Validation", 7), ("Test", n_test)):
        stem = f"ISIC2018_Task3_{part}"
        (root / f"{stem}_Input").mkdir(parents=True)
        (root / f"{stem}_GroundTruth").mkdir()
        lines = ["image," + ",".join(classes)]
        for i in range(n):
            image_id, next_id = f"ISIC_{next_id:07d}", next_id + 1
            pixels = np.asarray(bases[i % len(bases)], dtype=np.int16) + rng.integers(-40, 40, size=3)
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(
                root / f"{stem}_Input/{image_id}.jpg", quality=90
            )
            lines.append(image_id + "," + ",".join("1.0" if c == i % 7 else "0.0" for c in range(7)))
        (root / f"{stem}_GroundTruth/{stem}_GroundTruth.csv").write_text("\n".join(lines) + "\n")
    return root


def timed(fn, steps: int, warmup: int, sync) -> float:
    """Seconds for `steps` calls of fn after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    sync()
    return time.perf_counter() - start


def bare_loops(cfg: dict, args, device, num_classes: int) -> dict[str, float]:
    """images/s of the bare train step and feature forward on a tensor already on the device."""
    import torch

    from repdrift.models import POOLS, build_backbone
    from repdrift.training.finetune import Classifier

    cuda = device.type == "cuda"
    torch.manual_seed(0)
    model = Classifier(build_backbone(cfg, None), num_classes, "cls").to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4, weight_decay=0.05, fused=cuda or None)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.randn(args.batch_size, 3, args.img_size, args.img_size, device=device)
    x_features = torch.randn(args.feature_batch_size, 3, args.img_size, args.img_size, device=device)
    y = torch.randint(0, num_classes, (args.batch_size,), device=device)
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda)  # noqa: E731
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def train_step():
        with autocast():
            loss = loss_fn(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    @torch.no_grad()
    def feature_step():
        with autocast():
            model.backbone.representations(x_features, POOLS)

    model.train()
    train = timed(train_step, args.steps, args.warmup, sync)
    model.eval()
    features = timed(feature_step, args.steps, args.warmup, sync)
    n = args.steps * args.batch_size
    return {"finetune_bare": n / train, "features_bare": args.steps * args.feature_batch_size / features}


def peak_gpu_memory(reset: bool = False) -> float | None:
    """GiB of GPU memory allocated at most since the last reset; None on CPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    peak = torch.cuda.max_memory_allocated() / 2**30
    if reset:
        torch.cuda.reset_peak_memory_stats()
    return peak


def workflow_loops(cfg: dict, args, work: Path) -> dict[str, float]:
    """images/s of the workflow's own fine-tuning loop and feature extraction on real image files."""
    from repdrift.data import build_dataset, write_dataset
    from repdrift.measurement.extract import extract_features
    from repdrift.models import POOLS, build_backbone
    from repdrift.training.finetune import RunOutputs, finetune

    n_train = args.steps * args.batch_size  # the extraction runs over the same images, in larger batches
    raw = write_images(work / "isic2018", n_train, n_test=args.batch_size)
    write_dataset(build_dataset("isic2018", raw), work / "dataset")
    recipe = dict(
        epochs=2,
        batch_size=args.batch_size,
        lr=6e-4,
        weight_decay=0.05,
        warmup_epochs=1,
    )
    run = work / "run"
    run.mkdir()
    peak_gpu_memory(reset=True)
    with open(work / "finetune.log", "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        history = finetune(
            cfg,
            None,
            work / "dataset",
            "full",
            "cls",
            0,
            recipe,
            RunOutputs(
                run / "model.safetensors", run / "history.parquet", run / "predictions.h5", run / "trajectory.h5"
            ),
            cka_samples=min(8, args.batch_size),
        )
    rates = history["images_per_s"].to_list()
    finetune_memory = peak_gpu_memory(reset=True)

    backbone = build_backbone(cfg, None)
    seconds = []
    with open(work / "features.log", "w") as log, contextlib.redirect_stderr(log):
        for _ in range(2):  # the first pass warms up
            start = time.perf_counter()
            extract_features(
                backbone,
                work / "dataset",
                work / "features.h5",
                final_splits=["train"],
                cka_samples=0,
                pools=list(POOLS),
                batch_size=args.feature_batch_size,
                dtype="float32",
                weights_path=None,
            )
            seconds.append(time.perf_counter() - start)
    results = {"finetune_epoch1": rates[0], "finetune": rates[-1], "features": n_train / seconds[-1]}
    if finetune_memory is not None:
        results |= {"finetune_peak_gib": finetune_memory, "features_peak_gib": peak_gpu_memory()}
    return results


def peft_cost_results(args) -> dict:
    """benchmarks/peft_cost.py at this check's device, image size and batch: LoRA, BitFit, partial vs Full."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import peft_cost

    peft_args = [
        f"--device={args.device}",
        f"--img-size={args.img_size}",
        f"--batch-size={args.batch_size}",
        f"--steps={args.peft_steps}",
        f"--warmup={min(args.warmup, 5)}",
        f"--repeats={args.peft_repeats}",
    ]
    peft_args += ["--tiny"] * args.tiny + ["--in-process"] * (args.device == "cpu")
    results = peft_cost.run(peft_cost.parse_args(peft_args))
    print("\nparameter-efficient fine-tuning vs Full (benchmarks/peft_cost.py, bare training step):")
    print(peft_cost.table(results))
    return results


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the workflow picks CUDA whenever it sees one
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible; use --device cpu for a smoke test", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    model = "a tiny ViT" if args.tiny else "vit_b16 (timm vit_base_patch16_224, random init)"
    print(
        f"gpu_check: {model}, {args.img_size} px, batch {args.batch_size} (features "
        f"{args.feature_batch_size}), {args.steps} steps; {name}; torch {torch.__version__}",
        flush=True,
    )
    cfg = dict(ARCH, img_size=args.img_size, model_kwargs=TINY if args.tiny else {})
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        work = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gpu_check-")))
        work.mkdir(parents=True, exist_ok=True)
        results = bare_loops(cfg, args, device, num_classes=7)
        results |= workflow_loops(cfg, args, work)
    rows = [
        ("fine-tune, workflow (repdrift.training.finetune.finetune)", results["finetune"], results["finetune_bare"]),
        ("fine-tune, bare forward/backward", results["finetune_bare"], results["finetune_bare"]),
        (
            "features, workflow (repdrift.measurement.extract.extract_features)",
            results["features"],
            results["features_bare"],
        ),
        ("features, bare forward", results["features_bare"], results["features_bare"]),
    ]
    print(f"\n{'measure':<56} {'images/s':>10} {'vs bare':>8}")
    for label, rate, bare in rows:
        print(f"{label:<56} {rate:>10.1f} {rate / bare:>8.2f}")
    print(
        f"(fine-tune epoch 1, with warm-up: {results['finetune_epoch1']:.1f} images/s; "
        f"total {time.perf_counter() - started:.0f} s)"
    )
    if "finetune_peak_gib" in results:
        print(
            f"peak GPU memory: fine-tuning (batch {args.batch_size}) {results['finetune_peak_gib']:.1f} GiB, "
            f"feature extraction (batch {args.feature_batch_size}) {results['features_peak_gib']:.1f} GiB"
        )
    if args.peft_steps > 0:
        results["peft"] = peft_cost_results(args)
    if args.json:
        args.json.write_text(
            json.dumps(
                dict(
                    results,
                    device=name,
                    img_size=args.img_size,
                    batch_size=args.batch_size,
                    feature_batch_size=args.feature_batch_size,
                    steps=args.steps,
                ),
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
