"""How much slower a whole run is than the few steps the planner times: the CPU_SUSTAINED_FACTOR a first plan uses.

    python -m benchmarks.sustained_factor --real plain-20=68.2 plain-56=183.0 --steps 756 [--repeats 3]

Times each net the way budget.measure does for a fresh machine (2 warm-up + 3 timed steps, the median, bf16 if the
planner would pick it), `--repeats` times, then prints what a run of `--steps` steps of the presets' brief-run
recipe would be estimated at with factors 1.0 … 1.3, beside the real seconds of such runs (status.json's "seconds":
from the run's start to its end, without the process start). Run it on a quiet machine, with the threads the runs had.
"""
from __future__ import annotations

import argparse
import statistics

import torch

from resnet_viz.training import budget
from resnet_viz.config import ModelConfig
from resnet_viz.lecture.presets import recipe_for_steps

FACTORS = (1.0, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--real", nargs="+", required=True, help="NAME=SECONDS, e.g. plain-56=183.0")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device, train = torch.device("cpu"), recipe_for_steps(args.steps)
    print(f"| net | timed step (median of {args.repeats}) | real | " + " | ".join(f"×{f:g}" for f in FACTORS)
          + " | factor that fits |")
    print("|---|---:|---:|" + "---:|" * len(FACTORS) + "---:|")
    for item in args.real:
        name, real = item.split("=")
        depth, residual = int(name.split("-")[1]), name.startswith("resnet")
        model = ModelConfig(depth=depth, residual=residual)
        precision = budget.resolve_precision("auto", model, train.batch_size, device)
        timings = [budget.measure(model, train.batch_size, device, precision, sustained=False)
                   for _ in range(args.repeats)]
        step, eval_image = statistics.median(t[0] for t in timings), statistics.median(t[1] for t in timings)

        def estimate(f: float) -> float:
            speed = budget.Speed(step * f, eval_image, precision, args.threads)
            return budget.run_seconds(args.steps, train, model, speed)
        fits = (float(real) - estimate(0.0)) / (args.steps * step)
        print(f"| {name} ({precision}) | {step:.4f} s | {float(real):.0f} s | "
              + " | ".join(f"{estimate(f):.0f} s" for f in FACTORS) + f" | {fits:.2f} |", flush=True)


if __name__ == "__main__":
    main()
