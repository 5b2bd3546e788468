"""Fair use of the CPU: a training step alone and beside one competing CPU-bound process, with torch's old default
(one thread per core) and with resnet_viz's thread policy; and fp32 vs bf16 autocast.

    python -m benchmarks.contention [--depths 20 56] [--batch-size 128] [--steps 6]

The competitor is one process spinning on one core (as a second training process or a page render would). Prints a
table of median step times and the slowdown each setting suffers from the competitor (target ≤ 2.5×).
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time

import torch

from resnet_viz.training import budget
from resnet_viz.config import ModelConfig
from resnet_viz.training.threads import CpuLoad, choose_threads, usable_cores

CPU = torch.device("cpu")


def step_seconds(model: ModelConfig, batch: int, threads: int, precision: str, repeats: int) -> float:
    torch.set_num_threads(threads)
    times = [budget.measure(model, batch, CPU, precision, sustained=False)[0] for _ in range(repeats)]
    return sorted(times)[len(times) // 2]


def policy_threads() -> int:
    return choose_threads(CpuLoad().others_busy(min_interval=1.0))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--depths", type=int, nargs="+", default=[20, 56])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3, help="measurements (each 3 timed steps) per cell")
    args = p.parse_args()
    cores = usable_cores()
    print(f"# {time.strftime('%Y-%m-%d')} · {budget._cpu_model()} · {cores} cores · torch {torch.__version__} · "
          f"bf16 natively: {budget.cpu_has_bf16()} · batch {args.batch_size} · {platform.machine()}")
    print("| model | setting | threads alone | step alone (s) | threads beside 1 busy process | step beside (s) | "
          "slowdown |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for depth in args.depths:
        model = ModelConfig(depth=depth, residual=False)
        settings = [("torch default (1 thread/core), fp32", lambda: cores, "fp32"),
                    ("resnet_viz policy, fp32", policy_threads, "fp32"),
                    ("resnet_viz policy, bf16", policy_threads, "bf16")]
        for name, threads_now, precision in settings:
            t_alone = threads_now()
            alone = step_seconds(model, args.batch_size, t_alone, precision, args.repeats)
            spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            try:
                time.sleep(0.5)
                t_busy = threads_now()
                beside = step_seconds(model, args.batch_size, t_busy, precision, args.repeats)
            finally:
                spinner.kill()
                spinner.wait()
            print(f"| plain-{depth} | {name} | {t_alone} | {alone:.3f} | {t_busy} | {beside:.3f} | "
                  f"{beside / alone:.2f}× |", flush=True)
    torch.set_num_threads(os.cpu_count() or 1)


if __name__ == "__main__":
    main()
