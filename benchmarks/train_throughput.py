"""Training throughput: resnet_viz's trainer vs a loop written the ordinary way, same model, batch and device.

    python -m benchmarks.train_throughput [--depths 20 56 110] [--steps 20] [--warmup 5] [--data DIR]

For each plain/residual depth it measures images/second of
  * ours+grads  — resnet_viz.training.trainer.Trainer as the app runs it: every weight layer's gradient norm at every step,
                  and (residual nets) the branch ratios ‖F(x)‖/‖shortcut(x)‖ every 10 steps,
  * ours        — the same trainer with all recording off,
  * reference   — a torchvision CIFAR10-style Dataset (PIL images, CPU transforms) + DataLoader, fp32,
                  `loss.item()` every step, as most tutorials write it,
and prints the ratios. The recording's cost is shown twice: as the end-to-end difference between the first two
(noisy on a CPU: ±5% run to run) and timed in isolation as a share of a step. Data: the JPEG copy of CIFAR-10 in ../shared/data when present (unpacked to a cache folder),
otherwise --data, otherwise random images (said clearly in the output).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from resnet_viz.config import ModelConfig, RunConfig, TrainConfig
from resnet_viz.datasets.cifar10 import CIFAR10_MEAN, CIFAR10_STD, Cifar10Tensors, load_cifar10
from resnet_viz.training.devices import describe_device, resolve_device
from resnet_viz.nets.models import build_model
from resnet_viz.training.trainer import Trainer

SHARED_ARCHIVE = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"
UNPACKED = Path(os.environ.get("RESNET_VIZ_BENCH_DATA", Path.home() / ".cache" / "resnet_viz" / "cifar10-jpeg"))


def find_data(explicit: str | None) -> tuple[Cifar10Tensors, str]:
    if explicit:
        return load_cifar10(explicit, download=False), explicit
    if SHARED_ARCHIVE.is_file():
        if not (UNPACKED / "cifar10-jpeg" / "train").is_dir() and not (UNPACKED / "train").is_dir():
            print(f"unpacking {SHARED_ARCHIVE} to {UNPACKED} …", file=sys.stderr)
            UNPACKED.mkdir(parents=True, exist_ok=True)
            with tarfile.open(SHARED_ARCHIVE) as tar:
                tar.extractall(UNPACKED, filter="data")
        return load_cifar10(UNPACKED, download=False), "CIFAR-10 (JPEG copy)"
    print("NOTE: no CIFAR-10 found (../shared/data/cifar10-jpeg.tar.gz absent, no --data): using random images; "
          "throughput is still meaningful, accuracy is not.", file=sys.stderr)
    g = torch.Generator().manual_seed(0)
    n = 10_000
    return Cifar10Tensors(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
                          torch.arange(n) % 10, torch.randint(0, 256, (1000, 3, 32, 32), dtype=torch.uint8,
                                                              generator=g), torch.arange(1000) % 10,
                          tuple(str(i) for i in range(10)), "random"), "random images"


def bench_ours(cfg: ModelConfig, data, device: str, batch: int, warmup: int, steps: int, grads: bool,
               precision: str = "auto") -> float:
    marks: list[tuple[int, float]] = []
    total = warmup + steps
    train = TrainConfig(epochs=1000, batch_size=batch, max_steps=total, device=device, eval_every=10**9,
                        eval_images=10, record_grad_norms=grads, branch_ratio_every=10 if grads else 0,
                        flush_every=warmup, precision=precision)
    run = RunConfig(model=cfg, train=train)

    def on_progress(p):
        if p.step >= warmup and (not marks or marks[-1][0] != p.step):
            marks.append((p.step, time.perf_counter()))

    from resnet_viz.training.train_one import train  # the Trainer with "auto" precision resolved, as the app runs it
    train(run, data=data, save=False, on_progress=on_progress)
    end = next(m for m in marks if m[0] == total)
    start = marks[0]
    return (end[0] - start[0]) * batch / (end[1] - start[1])


def recording_seconds(cfg: ModelConfig, data, device: str, batch: int, repeats: int = 50) -> float:
    """Seconds per training step that the trainer's recording adds, timed in isolation (end-to-end differences of a
    few percent drown in CPU timing noise): the fused gradient-norm op every step, plus for residual nets one
    branch-ratio probe on 64 images every 10 steps."""
    from resnet_viz.analyses.probes import branch_ratio_probe
    from resnet_viz.datasets.batches import normalize
    dev = resolve_device(device)
    model = build_model(cfg).to(dev).to(memory_format=torch.channels_last).train()
    x = normalize(data.train_images[:batch].to(dev)).contiguous(memory_format=torch.channels_last)
    F.cross_entropy(model(x), data.train_labels[:batch].to(dev)).backward()
    grads = [m.weight.grad for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    buf = torch.zeros(repeats, len(grads), device=dev)

    def timed(fn, n):
        fn()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(n):
            fn(i)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - t0) / n

    def norms(i=0):
        buf[i] = torch.stack(torch._foreach_norm(grads))

    per_step = timed(norms, repeats)
    if cfg.residual:
        probe_images = data.test_images[:64].to(dev)
        per_step += timed(lambda i=0: branch_ratio_probe(model, probe_images), 5) / 10
    return per_step


class Cifar10Style(torch.utils.data.Dataset):
    """What torchvision.datasets.CIFAR10 does: HWC uint8 arrays in memory, a PIL image per item, CPU transforms."""

    def __init__(self, images_nchw: torch.Tensor, labels: torch.Tensor, transform):
        self.data = images_nchw.permute(0, 2, 3, 1).numpy()
        self.targets = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i):
        from PIL import Image
        return self.transform(Image.fromarray(self.data[i])), self.targets[i]


def bench_reference(cfg: ModelConfig, data, device: str, batch: int, warmup: int, steps: int,
                    precision: str = "fp32") -> float:
    """The ordinary loop; with precision bf16 it also autocasts and uses channels_last, so that the comparison
    with ours is of the data path and the host syncs, not of the arithmetic."""
    import torchvision.transforms as T
    dev = resolve_device(device)
    torch.manual_seed(0)
    model = build_model(cfg).to(dev).train()
    fast = precision == "bf16"
    if fast:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    loader = torch.utils.data.DataLoader(Cifar10Style(data.train_images, data.train_labels, transform),
                                         batch_size=batch, shuffle=True, drop_last=True,
                                         num_workers=min(4, os.cpu_count() or 1), pin_memory=dev.type == "cuda",
                                         persistent_workers=True)
    done, t0 = 0, None
    while done < warmup + steps:
        for x, y in loader:
            if done == warmup:
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            if fast:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=fast):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()  # the usual running-loss bookkeeping: a host sync every step
            done += 1
            if done == warmup + steps:
                break
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--depths", type=int, nargs="+", default=[20, 56, 110])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[128])
    p.add_argument("--archs", nargs="+", choices=("plain", "residual"), default=["plain", "residual"])
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="ours: the trainer's precision; the reference autocasts too when this is bf16")
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier (tiny sizes for a quick check)")
    p.add_argument("--device", default="auto")
    p.add_argument("--data", default=None)
    args = p.parse_args()
    data, data_name = find_data(args.data)
    dev = resolve_device(args.device)
    print(f"# {time.strftime('%Y-%m-%d')} · {describe_device(dev)} · {platform.processor() or platform.machine()} · "
          f"torch {torch.__version__} · precision {args.precision} · {args.steps} timed steps after {args.warmup} "
          f"warm-up · data: {data_name}")
    print("| model | batch | ours+grads img/s | ours img/s | reference img/s | ours+grads / reference | "
          "recording cost, end to end | recording cost, isolated |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    ref_precision = "bf16" if args.precision == "bf16" else "fp32"
    for depth in args.depths:
        for residual in (arch == "residual" for arch in args.archs):
            cfg = ModelConfig(depth=depth, residual=residual, width=args.width)
            for batch in args.batch_sizes:
                with_grads = bench_ours(cfg, data, args.device, batch, args.warmup, args.steps, True, args.precision)
                without = bench_ours(cfg, data, args.device, batch, args.warmup, args.steps, False, args.precision)
                ref = bench_reference(cfg, data, args.device, batch, args.warmup, args.steps, ref_precision)
                cost = 1 - with_grads / without
                isolated = recording_seconds(cfg, data, args.device, batch) / (batch / without)
                print(f"| {cfg.name} | {batch} | {with_grads:,.0f} | {without:,.0f} | {ref:,.0f} | "
                      f"{with_grads / ref:.2f}× | {100 * cost:+.1f}% | {100 * isolated:.2f}% |", flush=True)


if __name__ == "__main__":
    main()
