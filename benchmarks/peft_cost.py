"""The cost of parameter-efficient fine-tuning against Full: images/s and peak memory of a training step (issue 23).

    .venv/bin/python benchmarks/peft_cost.py                     # one GPU: ViT-B/16, 224 px, batch 32 (~1 min)
    .venv/bin/python benchmarks/peft_cost.py --device cpu --img-size 64 --batch-size 8 --steps 10 --threads 1
    .venv/bin/python benchmarks/peft_cost.py --device cpu --tiny --img-size 32 --steps 2 --warmup 1 --repeats 1

Model: timm `vit_base_patch16_224` (the vit_b16 architecture), random init: nothing is downloaded; `--tiny`, a
4-block, 32-wide ViT (a smoke test; LoRA ranks 2 and 8 there). Methods: Full, LoRA at each `--ranks` (alpha =
2 x rank, no dropout: the demo config's alpha_ratio), BitFit and partial (the top `--blocks` blocks), each made by
`repdrift.training.parameter_efficient.freeze_for` exactly as a workflow run is, with the CLS head trained in full.

Each measurement builds the model (seed 0), applies `freeze_for`, makes AdamW over the parameters that require
gradients (fused on CUDA) and runs `--warmup` untimed then `--steps` timed training steps on one synthetic batch
already on the device, as `repdrift.training.finetune.train_one_epoch` does: bf16 autocast on CUDA, backbone
forward in the pool, head, cross-entropy, zero_grad, backward, optimizer step, the loss read back. No data loading,
no scheduler.

Memory, per method, of the whole training loop (warm-up steps included, so the optimizer state is there):
- CUDA: torch.cuda.max_memory_allocated after reset_peak_memory_stats (taken once the model, the batch and the
  optimizer exist); "above start" subtracts memory_allocated at that moment (weights and batch).
- CPU: each measurement runs in its own process, so peaks do not mix: its peak RSS (getrusage ru_maxrss, which
  includes the Python interpreter, torch and the model) and the peak above that process's RSS just before the first
  step (model built, optimizer made).
Also the number of trainable parameters, of values in the optimizer's state (AdamW's two moments) and the bytes
autograd saves for the backward of one forward pass (parameters not counted; counted by saved_tensors_hooks, so
exact and free of allocator noise): the activation memory, which grows with batch x tokens where the rest does not.

The methods run in `--repeats` rounds, interleaved, the order rotated each round, so that drift in the machine's
load does not favour one; the table gives each method's median over rounds and its ratio to Full's median from the
same run. `--json` writes the numbers. benchmarks/gpu_check.py runs this on a GPU (its "parameter-efficient" part).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_metrics import OtherLoad  # this folder: sys.path[0] when run, gpu_check.py puts it there

ARCH = {"library": "timm", "arch": "vit_base_patch16_224", "paradigm": "supervised", "name": "vit_b16"}
TINY = {"patch_size": 8, "embed_dim": 32, "depth": 4, "num_heads": 2}  # 4 blocks: partial's top 3 fits
NUM_CLASSES = 7  # ISIC 2018's
ALPHA_RATIO = 2.0  # config/config.yaml's preserving.lora.alpha_ratio
MiB = 2**20


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per measurement (default 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before them (default 5)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds over the methods; medians (default 2)")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32, help="fine-tuning batch (the paper's 32)")
    parser.add_argument("--ranks", type=int, nargs="+", help="LoRA ranks (default 8 32; --tiny: 2 8)")
    parser.add_argument("--blocks", type=int, default=3, help="partial: top blocks trained (default 3)")
    parser.add_argument("--threads", type=int, help="CPU: torch threads in each measurement (default torch's)")
    parser.add_argument("--tiny", action="store_true", help="smoke test: a 4-block, 32-wide ViT, not ViT-B")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--in-process", action="store_true", help="CPU: no process per method (faster start; no memory figures)"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # CPU: measure this one method here, print JSON
    args = parser.parse_args(argv)
    args.ranks = args.ranks or ([2, 8] if args.tiny else [8, 32])  # the tiny ViT is 32 wide
    return args


def methods(ranks, blocks: int) -> list[str]:
    """Method specs: full, lora:<rank>..., bitfit, partial:<blocks>."""
    return ["full", *(f"lora:{r}" for r in ranks), "bitfit", f"partial:{blocks}"]


def label(spec: str) -> str:
    method, _, value = spec.partition(":")
    return {"lora": f"LoRA r={value}", "partial": f"partial (top {value})", "full": "Full", "bitfit": "BitFit"}[method]


def options(spec: str) -> tuple[str, dict]:
    method, _, value = spec.partition(":")
    if method == "lora":
        return method, {"rank": int(value), "alpha_ratio": ALPHA_RATIO, "dropout": 0.0}
    if method == "partial":
        return method, {"blocks": int(value)}
    return method, {}


def rss_bytes() -> int | None:
    """This process's resident set size now (Linux)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


def measure(spec: str, args, memory: bool = True) -> dict:
    """One method: build, freeze, time `args.steps` training steps after `args.warmup`; memory (unless `memory` is
    False: a CPU process that measured another method before) and counts."""
    import torch

    from repdrift.models import build_backbone
    from repdrift.training.finetune import Classifier
    from repdrift.training.parameter_efficient import freeze_for

    device = torch.device(args.device)
    img_size, batch_size, steps, warmup = args.img_size, args.batch_size, args.steps, args.warmup
    cuda = device.type == "cuda"
    cfg = dict(ARCH, img_size=img_size, model_kwargs=TINY if args.tiny else {})
    torch.manual_seed(0)
    backbone = build_backbone(cfg, None)
    model = Classifier(backbone, NUM_CLASSES, "cls").to(device)
    method, opts = options(spec)
    freeze_for(method, opts, backbone)  # LoRA's adapters are created on the backbone's device
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=6e-4, weight_decay=0.05, fused=cuda or None)
    loss_fn = torch.nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(batch_size, 3, img_size, img_size, generator=generator).to(device)
    y = torch.randint(0, NUM_CLASSES, (batch_size,), generator=generator).to(device)
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            z = model.backbone(x, model.pool)
            loss = loss_fn(model.head(z).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()  # train_one_epoch reads every step's loss

    model.train()
    gc.collect()
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        start_bytes = torch.cuda.memory_allocated()
    else:
        start_bytes = rss_bytes()
        maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    for _ in range(warmup):
        step()
    sync()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    seconds = time.perf_counter() - started
    if cuda:
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    if not memory:
        peak = start_bytes = None
    saved = saved_for_backward(model, lambda: loss_fn(model(x).float(), y), cuda)
    state = sum(v.numel() for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v) and v.dim())
    result = {
        "method": spec,
        "label": label(spec),
        "images_per_s": steps * batch_size / seconds,
        "trainable": sum(p.numel() for p in params),
        "parameters": sum(p.numel() for p in model.parameters()),
        "optimizer_state": state,
        "saved_mib": saved / MiB,
        "peak_mib": peak / MiB if peak is not None else None,
        "start_mib": start_bytes / MiB if start_bytes is not None else None,
        "above_start_mib": (peak - start_bytes) / MiB if start_bytes is not None else None,
    }
    if not cuda and memory:
        result["maxrss_before_mib"] = maxrss_before / MiB  # a build whose transient peak exceeded training's shows
    return result  # the model, its gradients and optimizer go with this frame


def saved_for_backward(model, loss, cuda: bool) -> int:
    """Bytes that autograd keeps for the backward of one forward pass (`loss()`), parameters not counted, each storage
    once: the activations a training step holds at its peak, measured exactly on any device (on CPU in float32; under
    CUDA autocast in bfloat16, the weights' bfloat16 copies included). They scale with batch x tokens."""
    import torch

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        with torch.autocast("cuda" if cuda else "cpu", dtype=torch.bfloat16, enabled=cuda):
            loss()
    return sum(storages.values())


def worker_command(spec: str, args) -> list[str]:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", spec, "--device", "cpu"]
    command += ["--img-size", str(args.img_size), "--batch-size", str(args.batch_size)]
    command += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    return command + (["--tiny"] if args.tiny else [])


def run_worker(spec: str, args) -> dict:
    """CPU: one method in a fresh process (its own peak RSS)."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    done = subprocess.run(worker_command(spec, args), capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"peft_cost worker {spec} failed:\n{done.stderr[-4000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(lines[-1][len("RESULT ") :])


def run(args) -> dict:
    """Every method, `args.repeats` interleaved rounds; medians and ratios to Full."""
    specs = methods(args.ranks, args.blocks)
    rounds: dict[str, list[dict]] = {spec: [] for spec in specs}
    started = time.perf_counter()
    with OtherLoad(report=False) as load:
        for r in range(args.repeats):
            for spec in specs[r % len(specs) :] + specs[: r % len(specs)]:  # rotated: none always first
                if args.device == "cuda" or args.in_process:
                    result = measure(spec, args, memory=args.device == "cuda")
                    gc.collect()
                    if args.device == "cuda":
                        import torch

                        torch.cuda.empty_cache()
                else:
                    result = run_worker(spec, args)
                rounds[spec].append(result)
    rows = []
    for spec in specs:
        runs = rounds[spec]
        row = dict(runs[0])
        for key in ("images_per_s", "peak_mib", "start_mib", "above_start_mib"):
            values = [run[key] for run in runs if run[key] is not None]
            row[key] = statistics.median(values) if values else None
        row["images_per_s_rounds"] = [run["images_per_s"] for run in runs]
        row.pop("maxrss_before_mib", None)
        row["maxrss_before_mib_rounds"] = [run.get("maxrss_before_mib") for run in runs]
        rows.append(row)
    full = rows[0]
    for row in rows:
        for key in ("images_per_s", "peak_mib", "above_start_mib", "trainable", "optimizer_state", "saved_mib"):
            ok = row[key] is not None and full[key]
            row[f"{key}_vs_full"] = row[key] / full[key] if ok else None
    return {
        "device": args.device,
        "model": "tiny ViT" if args.tiny else "vit_b16 (timm vit_base_patch16_224, random init)",
        "img_size": args.img_size,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "threads": args.threads,
        "memory": (
            "torch.cuda.max_memory_allocated"
            if args.device == "cuda"
            else "none (in one process)"
            if args.in_process
            else "peak RSS, one process each"
        ),
        "other_load": load.others,
        "seconds": time.perf_counter() - started,
        "methods": rows,
    }


def table(results: dict) -> str:
    def count(n: float) -> str:
        return f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n / 1e3:.1f} k"

    def mib(v: float | None) -> str:
        return "-" if v is None else f"{v:.0f}"

    def ratio(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    peak = "peak MiB" if results["device"] == "cuda" else "peak RSS MiB"
    header = (
        f"| method | trainable | x Full | optimizer state | images/s | x Full | {peak} | x Full "
        "| peak above start MiB | x Full | saved for backward MiB | x Full |"
    )
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in results["methods"]:
        above = row["above_start_mib"]
        lines.append(
            f"| {row['label']} | {count(row['trainable'])} | {ratio(row['trainable_vs_full'])} "
            f"| {count(row['optimizer_state'])} | {row['images_per_s']:.1f} | {ratio(row['images_per_s_vs_full'])} "
            f"| {mib(row['peak_mib'])} | {ratio(row['peak_mib_vs_full'])} "
            f"| {mib(above)} | {ratio(row['above_start_mib_vs_full'])} "
            f"| {mib(row['saved_mib'])} | {ratio(row['saved_mib_vs_full'])} |"
        )
    rounds = "; ".join(
        f"{row['label']} " + "/".join(f"{v:.1f}" for v in row["images_per_s_rounds"]) for row in results["methods"]
    )
    lines.append(f"(images/s per round: {rounds})")
    load = results["other_load"]
    if load is not None:
        lines.append(f"(other processes used {load:.0%} of the {os.cpu_count()} CPUs meanwhile)")
    return "\n".join(lines)


def describe(args, device_name: str) -> str:
    import torch

    model = "a tiny ViT" if args.tiny else "vit_b16 (timm vit_base_patch16_224, random init)"
    return (
        f"peft_cost: {model}, {args.img_size} px, batch {args.batch_size}, {args.warmup} + {args.steps} steps, "
        f"{args.repeats} rounds; {device_name}; torch {torch.__version__}"
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import torch

    if args.threads and args.device == "cpu":
        torch.set_num_threads(args.threads)
    if args.worker:
        result = measure(args.worker, args)
        print("RESULT " + json.dumps(result), flush=True)
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print("peft_cost: no CUDA device visible; use --device cpu", file=sys.stderr)
        return 2
    name = (
        torch.cuda.get_device_name()
        if args.device == "cuda"
        else f"CPU ({args.threads or torch.get_num_threads()} threads)"
    )
    print(describe(args, name), flush=True)
    results = run(args) | {"device_name": name, "torch": torch.__version__}
    print(table(results))
    print(f"(total {results['seconds']:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
