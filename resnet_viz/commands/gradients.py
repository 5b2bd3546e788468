"""`python -m resnet_viz gradients`: the step-0 gradient norms of a plain net and its ResNet twin, as a table
(`init_gradients`)."""
from __future__ import annotations

import argparse
import sys

from ..config import SHORTCUTS, ModelConfig, check_whole

DEFAULT_SEEDS = (0, 1, 2)  # init_gradients.DEFAULT_SEEDS; torch is imported only when the command runs


def add_parser(sub) -> None:
    g = sub.add_parser("gradients", help="print every layer's gradient norm at step 0 (before any training) of a "
                                         "plain net and its ResNet twin, on one real CIFAR-10 batch per seed")
    g.add_argument("--depth", type=int, default=56, help="6n+2: 20, 32, 44, 56, 110 … (default 56)")
    g.add_argument("--shortcut", choices=SHORTCUTS, default="A", help="the ResNet's shortcut option (default A)")
    g.add_argument("--no-bn", action="store_true", help="both nets without BatchNorm")
    g.add_argument("--width", type=float, default=1.0, help="channel multiplier (default 1 = 16/32/64)")
    g.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS),
                   help="each seed: its own initial weights and first batch, as a run with that seed (default 0 1 2)")
    g.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    g.add_argument("--threads", type=int, default=1,
                   help="CPU threads per pass (default 1): a run trained with N threads records the numbers of "
                        "--threads N; deep plain nets differ by a few %% between thread counts")
    # Also accepted after the command; SUPPRESS keeps a --data given before it.
    g.add_argument("--data", default=argparse.SUPPRESS, help="CIFAR-10 folder (as the global --data)")
    g.add_argument("--no-download", action="store_true", help="never download CIFAR-10")


def cmd_gradients(args) -> int:
    from ..datasets.cifar10 import load_cifar10
    from ..analyses.init_gradients import check_feasible, check_seeds, gradient_table, init_gradients
    from ..training.devices import resolve_device
    model = ModelConfig(depth=args.depth, shortcut=args.shortcut, batchnorm=not args.no_bn, width=args.width)
    device = resolve_device(args.device)
    check_seeds(args.seeds)
    check_whole("Threads", args.threads, 1, 1024)
    check_feasible(model, device=device)  # a bad or refused setting is said before any data is read
    data = load_cifar10(args.data, download=not args.no_download)

    def on_progress(done: int, total: int, message: str) -> None:
        if done < total:
            print(message, file=sys.stderr, flush=True)

    result = init_gradients(model, data, args.seeds, device=device, threads=args.threads, on_progress=on_progress)
    print(gradient_table(result))
    return 0
