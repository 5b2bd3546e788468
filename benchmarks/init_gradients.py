"""How fast the step-0 gradient view answers: `python -m benchmarks.init_gradients [--data DIR] [--depths 20 56 110]`.

For each depth (BatchNorm on, and off where asked) it times `init_gradients.init_gradients` from a cold cache, as a
slider move to an unseen setting would: the first seed (both nets: what the view draws first), all seeds (the band),
and the same call again (a setting seen before: the cache). The 1202 row says whether it is refused and why, or
how long it took. It prints the machine's load before each row: on a shared machine, compare rows measured under a
similar load only.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from resnet_viz.analyses import init_gradients as engine
from resnet_viz.config import ModelConfig
from resnet_viz.datasets.cifar10 import load_cifar10
from resnet_viz.errors import ConfigError
from resnet_viz.training.threads import CpuLoad

JPEG_COPY = Path.home() / ".cache" / "resnet_viz" / "cifar10-jpeg" / "cifar10-jpeg"


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def cold(model: ModelConfig, data, seeds: tuple[int, ...]) -> float:
    engine.clear_cache()
    return timed(lambda: engine.init_gradients(model, data, seeds))


def page_reruns(data_dir: str, depths: list[int], seeds: int) -> None:
    """The whole Build page's server time (Streamlit's AppTest, in this process) when the depth changes to a setting
    the step-0 view has not seen (the page's own summaries and diagrams already cached), and to one it has: the
    difference is the view's passes."""
    from streamlit.testing.v1 import AppTest
    os.environ["RESNET_VIZ_DATA"] = data_dir
    page = str(Path(__file__).resolve().parents[1] / "pages" / "1_Build.py")
    at = AppTest.from_file(page, default_timeout=300)
    at.session_state["keep_init_grad_seeds"] = seeds
    at.run()  # reads the data once (a cached resource from then on)
    print(f"{'Build page rerun':>16} {'depth':>5} {'unseen (s)':>10} {'seen (s)':>8}")
    depth_input = lambda: at.number_input(key="keep_build_cifar_depth")  # noqa: E731
    for depth in depths:
        depth_input().set_value(depth).run()  # the page's own caches (summary, diagrams) see this depth
        engine.clear_cache()
        depth_input().set_value(8).run()
        unseen = timed(lambda: depth_input().set_value(depth).run())
        depth_input().set_value(8).run()
        seen = timed(lambda: depth_input().set_value(depth).run())
        assert not at.exception, at.exception
        print(f"{f'{seeds} seeds':>16} {depth:>5} {unseen:>10.2f} {seen:>8.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.environ.get("RESNET_VIZ_DATA") or str(JPEG_COPY))
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 32, 44, 56, 110])
    parser.add_argument("--no-bn-depths", type=int, nargs="*", default=[56, 110])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="cold measurements per row (the median is shown)")
    parser.add_argument("--skip-1202", action="store_true")
    parser.add_argument("--page-depths", type=int, nargs="*", default=[20, 56, 110],
                        help="also time the whole Build page's rerun at these depths (none: skip)")
    args = parser.parse_args()

    data = load_cifar10(args.data, download=False)
    seeds = tuple(range(args.seeds))
    load = CpuLoad()
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"data: {data.source}")
    print(f"# cold = cache cleared first (a setting not seen before); median of {args.repeats}")
    engine.init_gradients(ModelConfig(depth=8), data, (0,))  # warm-up: oneDNN's first call sets itself up
    header = (f"{'depth':>5} {'BN':>3} {'GMACs/pass':>10} {'first seed (s)':>15} {f'{args.seeds} seeds (s)':>13} "
              f"{'cached (ms)':>11} {'others busy (cores)':>20}")
    print(f"# others busy: cores other processes kept busy while the row was timed (of {os.cpu_count()})")
    print(header)
    rows = [(d, True) for d in args.depths] + [(d, False) for d in args.no_bn_depths]
    for depth, bn in rows:
        model = ModelConfig(depth=depth, batchnorm=bn)
        load.others_busy(min_interval=0.0)  # from here: the load while this row is timed
        first = statistics.median(cold(model, data, seeds[:1]) for _ in range(args.repeats))
        every = statistics.median(cold(model, data, seeds) for _ in range(args.repeats))
        cached = statistics.median(timed(lambda: engine.init_gradients(model, data, seeds)) for _ in range(5)) * 1000
        busy = load.others_busy(min_interval=0.0)
        gmacs = engine.check_feasible(model).gmacs
        print(f"{depth:>5} {'on' if bn else 'off':>3} {gmacs:>10.1f} {first:>15.2f} {every:>13.2f} {cached:>11.0f} "
              f"{busy:>20.2f}", flush=True)
    if not args.skip_1202:
        model = ModelConfig(depth=1202)
        try:
            engine.check_feasible(model)
        except ConfigError as e:
            print(f" 1202  on  {e}")
        else:
            progress = lambda done, total, message: print(f"   [{done}/{total}] {message}", flush=True)  # noqa: E731
            engine.clear_cache()
            seconds = timed(lambda: engine.init_gradients(model, data, (0,), on_progress=progress))
            print(f" 1202  on  first seed {seconds:.1f} s")
    if args.page_depths:
        for n in sorted({1, args.seeds}):
            page_reruns(args.data, args.page_depths, n)


if __name__ == "__main__":
    main()
