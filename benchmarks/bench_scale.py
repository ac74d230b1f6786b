"""Scale of feature extraction (memory, speed, bytes on disk) and the paper study's projected disk use.

    .venv/bin/python benchmarks/bench_scale.py            # n = 2,000 and 20,000 images: 2.5-5 min on 2 cores
    .venv/bin/python benchmarks/bench_scale.py --quick    # n = 200 and 2,000, a smoke test (~40 s)

Part 1 runs `repdrift.measurement.extract.extract_features` on CPU with a small random-init timm ViT (12 blocks, D =
192, 32 px, patch 8) over ImageNet-layout JPEGs, writing the k-NN kind of feature file (train + test, pools cls and
mean, no CKA sample, batch 128), at n and 10 n images and once more at 10 n in float16. Each extraction runs in
a fresh process with one thread, so its peak RSS (getrusage) is that job's alone and its time is not spread over
threads. The same process then times a bare `backbone(x)` loop over the same DataLoader: the extraction's speed is
given as a ratio to it. Goals: peak RSS(10 n) / peak RSS(n) <= 1.10, extraction / bare forward close to 1.

Part 2 projects the disk use of config/paper.yaml (the union of its grids) from the file layouts, with no
weights: parameter counts from the architectures built on the meta device, feature files sized as HDF5 stores
them (every chunk whole: `repdrift.formats.features` chunks), small files (metadata, predictions) written for real, and
one estimate checked against a file written in full.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TINY_VIT = {
    "library": "timm",
    "arch": "vit_base_patch16_224",
    "paradigm": "supervised",
    "img_size": 32,
    "name": "tiny_vit",
    "model_kwargs": {"patch_size": 8, "embed_dim": 192, "depth": 12, "num_heads": 3},
}
POOLS = ["cls", "mean"]
CLASSES = 10
MB, GB = 1e6, 1e9


# ---------------------------------------------------------------- part 1: one extraction per fresh process
def wnid(c: int) -> str:
    return f"n{1440764 + c:08d}"


def make_images(root: Path, per_class: int) -> None:
    """`per_class` 32x32 noise JPEGs per class in train/ and in val/, named as ImageNet's (realistic id lengths)."""
    rng = np.random.default_rng(0)
    from PIL import Image

    for c, split in itertools.product(range(CLASSES), ("train", "val")):
        folder = root / split / wnid(c)
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            name = f"{wnid(c)}_{i}.JPEG" if split == "train" else f"ILSVRC2012_val_{c * per_class + i:08d}.JPEG"
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), np.uint8)).save(folder / name, quality=90)


def prepare(images: Path, out: Path, n: int) -> Path:
    """A prepared dataset of n images, half bank half queries, through the imagenet adapter's subsetting."""
    from repdrift.data import build_dataset, write_dataset

    k = n // (2 * CLASSES)
    return write_dataset(build_dataset("imagenet", images, bank_per_class=k, val_per_class=k), out)


def child(job: dict) -> dict:
    """In a fresh process: time extract_features, read its peak RSS, then time a bare forward loop."""
    import psutil
    import torch
    from threadpoolctl import threadpool_limits
    from torch.utils.data import DataLoader

    from repdrift.data import read_dataset
    from repdrift.data.loader import ManifestImages, loader_workers
    from repdrift.measurement.extract import extract_features, feature_rows
    from repdrift.models import build_backbone

    torch.set_num_threads(1)
    threadpool_limits(1)
    torch.manual_seed(0)
    backbone = build_backbone(TINY_VIT, None).eval()
    with torch.no_grad():  # warm-up: first-call allocations and kernel choice are not the extraction's
        backbone.representations(torch.randn(job["batch_size"], 3, 32, 32), POOLS)
    rss_before = psutil.Process().memory_info().rss
    start = time.perf_counter()
    extract_features(
        backbone,
        job["dataset"],
        job["out"],
        final_splits=["train", "test"],
        cka_samples=0,
        pools=POOLS,
        batch_size=job["batch_size"],
        dtype=job["dtype"],
        weights_path=None,
    )
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    result = {
        "rss_before": rss_before,
        "peak_rss": peak,
        "rss_after": psutil.Process().memory_info().rss,
        "seconds": seconds,
        "bytes": os.path.getsize(job["out"]),
    }
    if job["bare"]:
        dataset = read_dataset(job["dataset"])
        rows = feature_rows(dataset.manifest, ["train", "test"], 0)
        images = ManifestImages(rows, backbone.transform(False), dataset.task, len(dataset.classes))
        loader = DataLoader(images, batch_size=job["batch_size"], num_workers=loader_workers())
        start = time.perf_counter()
        with torch.no_grad():
            for x, _, _ in loader:
                backbone(x)
        result["bare_seconds"] = time.perf_counter() - start
    return result


def run_child(job: dict) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(job)], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode:
        sys.exit(f"extraction child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def cpu_seconds() -> tuple[float, float, float]:
    """(CPU seconds all CPUs were busy, those of this process and its children, wall clock): to tell other load."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:9]]
    t = os.times()
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    return busy, t.user + t.system + t.children_user + t.children_system, time.perf_counter()


def part1(n: int, work: Path) -> None:
    images = work / "images"
    started = time.perf_counter()
    make_images(images, 10 * n // (2 * CLASSES))
    print(f"({10 * n:,} JPEGs written in {time.perf_counter() - started:.0f} s)\n")
    results, start = {}, cpu_seconds()
    for size, dtype, bare in ((n, "float32", True), (10 * n, "float32", True), (10 * n, "float16", False)):
        dataset = prepare(images, work / f"data{size}", size)
        job = {
            "dataset": str(dataset),
            "out": str(work / f"features{size}_{dtype}.h5"),
            "dtype": dtype,
            "batch_size": 128,
            "bare": bare,
        }
        results[size, dtype] = run_child(job)
        os.remove(job["out"])
    busy, own, wall = (b - a for a, b in zip(start, cpu_seconds()))
    print_extractions(n, results)
    print(
        f"(other processes used {max(0.0, busy - own) / (wall * os.cpu_count()):.0%} of the {os.cpu_count()} CPUs "
        "during these extractions)"
    )


def print_extractions(n: int, results: dict) -> None:
    print(
        "| images | dtype | peak RSS MB | RSS before / after extraction MB | extraction s | images/s | "
        "bare forward images/s | extraction / bare forward | bytes per image |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for (size, dtype), r in results.items():
        rss = f"{r['peak_rss'] / MB:.0f} | {r['rss_before'] / MB:.0f} / {r['rss_after'] / MB:.0f}"
        bare = (
            f"{size / r['bare_seconds']:.0f} | {r['bare_seconds'] / r['seconds']:.2f}"
            if r.get("bare_seconds")
            else "- | -"
        )
        print(
            f"| {size:,} | {dtype} | {rss} | {r['seconds']:.1f} | {size / r['seconds']:.0f} | {bare} "
            f"| {r['bytes'] / size:.0f} |"
        )
    small, big, half = results[n, "float32"], results[10 * n, "float32"], results[10 * n, "float16"]
    grow = [(r["peak_rss"] - r["rss_before"]) / MB for r in (small, big)]
    print(
        f"\nRATIO peak RSS(10 n) / peak RSS(n) = {big['peak_rss'] / small['peak_rss']:.3f}   (goal <= 1.10; "
        f"peak - RSS before the extraction: {grow[0]:.0f} MB at n, {grow[1]:.0f} MB at 10 n)"
    )
    for size, r in ((n, small), (10 * n, big)):
        print(
            f"RATIO extraction / bare forward speed at {size:,} images = {r['bare_seconds'] / r['seconds']:.2f}"
            "   (goal: close to 1)"
        )
    arrays = [len(POOLS) * stored_array_bytes((10 * n, 192), t) / (10 * n) for t in ("float32", "float16")]
    print(
        f"RATIO bytes per image float16 / float32 at {10 * n:,} images = {half['bytes'] / big['bytes']:.3f}   "
        f"(of which feature arrays as HDF5 stores them, the partial last chunk whole: {arrays[0]:.0f} / "
        f"{arrays[1]:.0f}; the rest is sample_id, split, targets)"
    )


# ---------------------------------------------------------------- part 2: projected disk use of the paper study
# Test-split sizes and head outputs of the paper's datasets: the official / paper splits as config/paper.yaml's
# comments give them (ISIC 2018 official test; APTOS 2019 stratified 80/10/10; MedFM "paper" split = test_WithLabel
# + test_WithoutLabel); outputs follow repdrift.training.finetune.num_outputs (colon is binary: 2).
TARGETS = {"isic2018": (1512, 7), "aptos2019": (366, 5), "chest": (3869, 19), "colon": (7651, 2), "endo": (2936, 4)}
# ImageNet k-NN (config/paper.yaml knn, datasets.imagenet): bank 100 per class x 1000 classes, all 50,000 val queries.
KNN_ROWS = {"train": 100 * 1000, "test": 50_000}
SAFETENSORS_DTYPES = {"torch.float32": "F32", "torch.float16": "F16", "torch.int64": "I64"}


def study(path: Path) -> tuple[dict, list[dict]]:
    """The config (with the schema's defaults) and its runs: the union of its grids (repdrift.study; WiSE-FT: a run
    per a)."""
    import yaml
    from snakemake.utils import validate

    from repdrift.study import Study

    config = yaml.safe_load(path.read_text())
    validate(config, str(Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml"))
    return config, [dict(run.wildcards) for run in Study(config).runs.values()]


def cka_sample_size(config: dict, dataset: str) -> int:
    """The CKA sample of `dataset`'s runs (repdrift.study `Study.cka_samples`): its test images, at most that n."""
    from repdrift.formats.features import cka_sample
    from repdrift.study import Study

    return len(cka_sample(TARGETS[dataset][0], Study(config).cka_samples(dataset)))


def trajectory_entries(config: dict, method: str) -> int:
    """Entries of a run's trajectory: before fine-tuning and after every epoch; WiSE-FT's pre-trained model and
    ensemble."""
    if method.startswith("wiseft"):
        return 2
    train = config["train"]
    epochs = (train.get("linear_probe") or {}).get("epochs") if method == "linear" else None
    return (epochs or train["epochs"]) + 1


def meta_models(name: str, cfg: dict):
    """(the run's Backbone, the released checkpoint's whole model), built on the meta device: shapes, no memory."""
    import open_clip
    import timm
    import torch

    from repdrift.models import backbone_spec, build_backbone
    from repdrift.models.open_clip_backbone import wrap_visual

    spec = backbone_spec({**cfg, "name": name})
    with torch.device("meta"):
        if spec["library"] == "timm":  # the Hub file holds the model at its own size, with its own head
            return build_backbone(spec, None), timm.create_model(spec["arch"], pretrained=False)
        # open_clip moves a new model to `device`: meta, else it would copy out of meta tensors
        logging.disable(logging.WARNING)  # its "initialized randomly" notice: no weights are wanted here
        clip = open_clip.create_model(spec["arch"], device="meta", force_image_size=spec["img_size"])
        logging.disable(logging.NOTSET)
        return wrap_visual(spec, clip), clip  # its Hub file holds the whole CLIP model (both towers)


def safetensors_bytes(state: dict) -> int:
    """The size safetensors.save_file gives a state dict: 8-byte length, JSON header padded to 8, raw data."""
    header, offset = {}, 0
    for key, t in sorted(state.items()):
        size = t.numel() * t.element_size()
        header[key] = {
            "dtype": SAFETENSORS_DTYPES[str(t.dtype)],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    length = len(json.dumps(header, separators=(",", ":")))
    return 8 + length + (-length) % 8 + offset


def classifier_state(backbone, outputs: int) -> dict:
    import torch

    from repdrift.training.finetune import Classifier

    with torch.device("meta"):
        return Classifier(backbone, outputs, "cls").state_dict()


def stored_array_bytes(shape: tuple[int, ...], dtype: str) -> int:
    """Bytes HDF5 stores for a FeatureWriter array: every chunk whole, the partial last one along samples too."""
    from repdrift.formats.features import _chunks

    chunks = _chunks(shape, dtype)
    count = math.prod(math.ceil(s / c) for s, c in zip(shape, chunks))
    return count * math.prod(chunks) * np.dtype(dtype).itemsize


def written_size(path: Path, write) -> int:
    write(path)
    size = path.stat().st_size
    path.unlink()
    return size


def metadata_bytes(path: Path, strings: dict[str, list[str]], targets=None) -> int:
    """A feature file with only its per-row strings and targets (real lengths), written: strings cost varies."""
    from repdrift.formats.features import FeatureWriter

    def write(p):
        attrs = {"model": "x" * 40, "weights_sha256": "0" * 64, "manifest_sha256": "0" * 64}
        with FeatureWriter(p, attrs, "float32") as out:
            for name, values in strings.items():
                out.strings(name, values)
            if targets is not None:
                out.array("targets", targets)

    return written_size(path, write)


def imagenet_ids() -> tuple[list[str], list[str]]:
    ids = [f"train/n{c:08d}/n{c:08d}_{i + 10000}.JPEG" for c in range(1000) for i in range(100)]
    ids += [f"val/n{c:08d}/ILSVRC2012_val_{c * 50 + i:08d}.JPEG" for c in range(1000) for i in range(50)]
    return ids, ["train"] * KNN_ROWS["train"] + ["test"] * KNN_ROWS["test"]


def check_estimate(work: Path, dim: int, depth: int, m: int, ids: list[str]) -> str:
    """A pre-trained CKA reference file written in full (zeros) against its estimate, per dtype."""
    from repdrift.formats.features import FeatureWriter

    def write(path, dtype):
        with FeatureWriter(path, {}, dtype) as out:
            for pool in POOLS:
                out.create(f"layers/{pool}", (depth, m, dim))
                out.write(f"layers/{pool}", np.s_[:], np.zeros((depth, m, dim), np.float32))
            out.strings("layers_sample_id", ids)

    lines = []
    for dtype in ("float32", "float16"):
        actual = written_size(work / "check.h5", lambda path: write(path, dtype))
        estimate = metadata_bytes(work / "meta.h5", {"layers_sample_id": ids}) + len(POOLS) * stored_array_bytes(
            (depth, m, dim), dtype
        )
        lines.append(f"{dtype} {actual / MB:.2f} MB written vs {estimate / MB:.2f} MB estimated")
        if dtype == "float32":
            logical = len(POOLS) * depth * m * dim * 4
            lines[-1] += f" ({actual / logical:.2f}x the array bytes: the partial last chunk is stored whole)"
    return "; ".join(lines)


def check_safetensors(work: Path) -> str:
    from safetensors.torch import save_file

    from repdrift.models import build_backbone
    from repdrift.training.finetune import Classifier

    state = Classifier(build_backbone(TINY_VIT, None), 7, "cls").state_dict()
    actual = written_size(work / "check.safetensors", lambda p: save_file(dict(state), str(p)))
    return f"{actual:,} bytes written vs {safetensors_bytes(state):,} estimated (part 1's model)"


def checkpoint_bytes(state: dict, method: str, entries: int, layers: int, m: int, dim: int) -> tuple[int, int]:
    """A fine-tune's checkpoint at its last epoch, (float32, float16) features: trainable weights and AdamW's two
    moments (float32), and the trajectory so far (`entries`) in features.dtype; pickle and zip framing add well
    under 1 MB."""
    trainable = sum(t.numel() * 4 for k, t in state.items() if method != "linear" or k.startswith("head."))
    return tuple(3 * trainable + entries * layers * m * dim * size for size in (4, 2))


def file_types(config: dict, runs: list[dict], work: Path) -> tuple[dict, int, tuple[int, int, list[str]]]:
    """File type -> (path pattern, [(float32, float16) bytes of each file]); the largest checkpoint; (D, L, names)."""

    used = [name for name in config["backbones"] if name in {r["backbone"] for r in runs}]
    models = {name: meta_models(name, config["backbones"][name]) for name in used}
    dims = {(b.embed_dim, b.num_layers) for b, _ in models.values()}
    assert len(dims) == 1, f"backbones differ in width or depth: {dims}"
    ((dim, depth),) = dims
    layers = depth + 1  # every block, then the final representation
    pools = len({r["pool"] for r in runs})
    m = {d: cka_sample_size(config, d) for d in TARGETS}
    knn_rows = sum(KNN_ROWS.values())
    ids, splits = imagenet_ids()
    knn_meta = metadata_bytes(work / "m.h5", {"sample_id": ids, "split": splits}, np.zeros(knn_rows, np.int64))
    sample_meta = {d: metadata_bytes(work / "m.h5", {"sample_id": target_ids(d, k)}) for d, k in m.items()}
    heads = {
        (r["backbone"], r["dataset"]): classifier_state(models[r["backbone"]][0], TARGETS[r["dataset"]][1])
        for r in runs
    }

    def per_dtype(size):  # size(dtype) -> (float32, float16) bytes
        return tuple(size(t) for t in ("float32", "float16"))

    def same(size: float):  # not a feature: the same in both
        return size, size

    fine_tuned = [r for r in runs if r["method"] != "linear"]  # a Linear run's k-NN features are the pre-trained
    types = {
        "fine-tuned model": (
            "results/runs/{run}/model.safetensors",
            [same(safetensors_bytes(heads[r["backbone"], r["dataset"]])) for r in runs],
        ),
        "CKA trajectory": (
            "results/runs/{run}/trajectory.h5",
            [
                per_dtype(
                    lambda t, d=r["dataset"], e=trajectory_entries(config, r["method"]): (
                        sample_meta[d] + stored_array_bytes((e, layers, m[d], dim), t)
                    )
                )
                for r in runs
            ],
        ),
        "fine-tuned k-NN features (Full, Scratch; one pool)": (
            "results/runs/{run}/features/imagenet.h5",
            [per_dtype(lambda t: knn_meta + stored_array_bytes((knn_rows, dim), t)) for _ in fine_tuned],
        ),
        "test predictions": (
            "results/runs/{run}/predictions.h5",
            [same(predictions_bytes(work, r["dataset"])) for r in runs],
        ),
        "per-run tables (6 parquet files; bytes per run, estimated)": (
            "results/runs/{run}/*.parquet",
            [same(1 * MB) for _ in runs],
        ),
        f"pre-trained k-NN features ({pools} pools)": (
            "results/pretrained/{backbone}/features/imagenet.h5",
            [per_dtype(lambda t: knn_meta + pools * stored_array_bytes((knn_rows, dim), t)) for _ in models],
        ),
        f"pre-trained CKA references ({pools} pools)": (
            "results/pretrained/{backbone}/features/{target}.h5",
            [
                per_dtype(lambda t, d=d: sample_meta[d] + pools * stored_array_bytes((layers, m[d], dim), t))
                for _ in models
                for d in TARGETS
            ],
        ),
        "fetched weights (Hub files, float32)": (
            "results/pretrained/{backbone}/hub/*.safetensors",
            [same(safetensors_bytes(full.state_dict())) for _, full in models.values()],
        ),
    }
    biggest = max(
        (
            checkpoint_bytes(
                heads[r["backbone"], r["dataset"]],
                r["method"],
                trajectory_entries(config, r["method"]),
                layers,
                m[r["dataset"]],
                dim,
            )
            for r in runs
            if not r["method"].startswith("wiseft")  # derived, not trained: no checkpoint
        ),
        key=lambda sizes: sizes[0],
    )
    return types, biggest, (dim, depth, used, m)


def target_ids(dataset: str, n: int) -> list[str]:
    return [f"{dataset}/images/{i:012d}.png" for i in range(n)]


def predictions_bytes(work: Path, dataset: str) -> int:
    from repdrift.formats.predictions import Predictions, write_predictions

    n, c = TARGETS[dataset]
    multilabel = dataset in ("chest", "endo")
    targets = np.zeros((n, c), np.float32) if multilabel else np.zeros(n, np.int64)
    p = Predictions(
        np.zeros((n, c)),
        targets,
        np.array(target_ids(dataset, n)),
        "multilabel" if multilabel else "multiclass",
        [str(i) for i in range(c)],
    )
    return written_size(work / "p.h5", lambda path: write_predictions(path, p))


def part2(work: Path) -> None:
    config, runs = study(REPO / "config/paper.yaml")
    types, checkpoint, (dim, depth, backbones, m) = file_types(config, runs, work)
    samples = ", ".join(f"{d} {k}" for d, k in m.items())
    print(
        f"{len(runs)} runs (the union of config/paper.yaml's grids); D = {dim} and {depth} blocks for "
        f"{', '.join(backbones)} (built on the meta device); CKA sample {samples}; k-NN file "
        f"{sum(KNN_ROWS.values()):,} rows. GB = 1e9 bytes, MB = 1e6 bytes.\n"
    )
    print("| file | path | files | MB per file (typical), float32 / float16 | GB float32 | GB float16 |")
    print("|---|---|---|---|---|---|")
    totals = np.zeros(2)
    for name, (path, sizes) in types.items():
        typical = np.median(sizes, axis=0) / MB
        total = np.sum(sizes, axis=0) / GB
        totals += total
        bound = "< " if "estimated" in name else ""
        per_file = f"{typical[0]:.1f}" + ("" if typical[0] == typical[1] else f" / {typical[1]:.1f}")
        gb = f"{bound}{total[0]:.2f} | {bound}{total[1]:.2f}"
        print(f"| {name} | `{path}` | {len(sizes)} | {bound}{per_file} | {gb} |")
    print(
        f"| transient checkpoint (largest: Full / Scratch at the last epoch; deleted when the run ends) | "
        f"`results/runs/{{run}}/checkpoint/last.pt` | 1 per running fine-tune | {checkpoint[0] / MB:.0f} / "
        f"{checkpoint[1] / MB:.0f} | not summed | not summed |"
    )
    print(f"| **total** | | | | **{totals[0]:.1f}** | **{totals[1]:.1f}** |\n")
    for dtype, total in zip(("float32", "float16"), totals):
        print(f"TOTAL {dtype}: {total:.1f} GB, {'under' if total < 100 else 'OVER'} the 100 GB goal")
    weights = sum(s[0] for s in types["fetched weights (Hub files, float32)"][1]) / GB
    largest = checkpoint[1]  # the paper config stores features as float16
    print(
        f"\nTransient checkpoints come on top (float16 features): one fine-tune at a time (1 GPU) "
        f"{largest / GB:.2f} GB, {2 * largest / GB:.1f} GB while it is replaced (the new file is written beside the "
        f"old one); at -j 60, 60 fine-tunes near their last epoch, up to {60 * largest / GB:.0f} GB "
        f"({120 * largest / GB:.0f} GB "
        f"if all replace at once). Not counted: the Hugging Face cache's own copy of the fetched weights "
        f"({weights:.2f} GB, where they were fetched), logs, benchmarks, tables and figures (small)."
    )
    ids = [f"x{i:040d}" for i in range(m["isic2018"])]
    print(
        f"\nChecks: a pre-trained CKA reference file of isic2018 written in full, "
        f"{check_estimate(work, dim, depth + 1, m['isic2018'], ids)}; safetensors {check_safetensors(work)}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="the smaller size (the larger is 10 n); default 2000")
    parser.add_argument("--quick", action="store_true", help="n = 200: a smoke test")
    parser.add_argument("--disk-only", action="store_true", help="only the paper's projected disk use (seconds)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    n = 200 if args.quick else args.n
    if n % (2 * CLASSES):
        parser.error(f"--n must be a multiple of {2 * CLASSES} (half bank, half queries, {CLASSES} classes)")
    started = time.perf_counter()
    print(f"```\n.venv/bin/python benchmarks/bench_scale.py {' '.join(sys.argv[1:])}\n```\n".replace(" \n", "\n"))
    with tempfile.TemporaryDirectory(prefix="bench_scale-") as tmp:
        if args.disk_only:
            part2(Path(tmp))
            return
        print(f"## Feature extraction at n = {n:,} and 10 n = {10 * n:,} images\n")
        print(
            "CPU, torch and BLAS at 1 thread in each extraction's own process (torch.set_num_threads(1), "
            "threadpoolctl.threadpool_limits(1)); tiny random-init timm ViT (12 blocks, D = 192, 32 px, patch 8); "
            f"k-NN kind of file: train + test, pools {' + '.join(POOLS)}, batch 128, no CKA sample. "
            "Peak RSS = getrusage(RUSAGE_SELF).ru_maxrss of that process, which includes torch and the model."
        )
        part1(n, Path(tmp))
        print("\n## Projected disk use of the paper study (config/paper.yaml)\n")
        part2(Path(tmp))
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
