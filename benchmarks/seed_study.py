"""Does a preset's step count show the paper's Fig. 6 on every seed, not on average?

    python -m benchmarks.seed_study --steps 288 480 [--seeds 0 1 2] [--nets plain-20 plain-56 resnet-56] [--data DIR]

Trains each net with the preset recipe for that many steps (resnet_viz.lecture.presets.recipe_for_steps: what the app and the
command line train in a budget of that length) and prints, per seed, the final training error (eval mode, the fixed
500 training images) and the three checks of the lecture promise (resnet_viz.lecture.presets.fig6_shape):
plain-56 learned (<= 80%), plain-56 >= plain-20 + 5 points, ResNet-56 >= 10 points below plain-56.
Errors depend on the steps, not on the speed, so a busy machine only makes this slower, not different.
Data: --data, else the JPEG copy of CIFAR-10 in ../shared/data (unpacked once).
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time

from benchmarks.live_budget import data_folder
from resnet_viz.config import ModelConfig, RunConfig
from resnet_viz.datasets.cifar10 import load_cifar10
from resnet_viz.lecture.learning import fig6_shape
from resnet_viz.lecture.presets import Preset, preset_runs
from resnet_viz.storage.store import RunStore
from resnet_viz.training.train_one import train

NETS = {"plain-20": ModelConfig(depth=20, residual=False), "plain-56": ModelConfig(depth=56, residual=False),
        "resnet-20": ModelConfig(depth=20), "resnet-56": ModelConfig(depth=56)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, nargs="+", default=[288])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--nets", nargs="+", default=["plain-20", "plain-56", "resnet-56"], choices=sorted(NETS))
    p.add_argument("--threads", type=int, default=0, help="0: the free cores, as a run would take them")
    p.add_argument("--data", default=None)
    args = p.parse_args()
    data_dir = data_folder(args.data)
    data = load_cifar10(data_dir, download=False, progress=False)
    preset = Preset("study", "seed study", "", tuple(NETS[n] for n in args.nets))
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} · {platform.processor() or platform.machine()} · data {data_dir}")
    print("| steps | seed | " + " | ".join(f"{n} train err %" for n in args.nets) + " | Fig. 6 shape |")
    print("|---:|---:|" + "---:|" * len(args.nets) + "---|")
    with tempfile.TemporaryDirectory() as runs:
        for steps in args.steps:
            for seed in args.seeds:
                errors = {}
                for name, config in zip(args.nets, preset_runs(preset, steps, data_dir)):
                    config = RunConfig.from_dict(config.to_dict())
                    config.train.seed, config.train.threads = seed, args.threads
                    result = train(config, data=data, store=RunStore(runs))
                    errors[name] = 100 * float(result.metrics["train_error"][-1])
                verdict = fig6_shape(errors)
                print(f"| {steps} | {seed} | " + " | ".join(f"{errors[n]:.1f}" for n in args.nets)
                      + f" | {'yes' if verdict.holds else 'no: ' + '; '.join(verdict.failures)} |", flush=True)


if __name__ == "__main__":
    main()
