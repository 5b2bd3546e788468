"""Does a preset keep to its time budget, and is the queue's ETA right? Measured the way the app runs it.

    python -m benchmarks.live_budget [--preset degradation] [--minutes 3] [--data DIR] [--cli]

Plans the preset as the Train page does (this machine's measured step times, a core left to the server where
there are more than two), queues it
on the app's own JobQueue, polls the whole-queue ETA every second as the Train page does, and prints:
  * the estimate shown before anything starts vs the real wall time (target: within ±20%),
  * the ETA shown at 25% of the planned time vs the real time left from that moment (target: within ±20%),
  * each run's steps, final training/test error, precision and threads.
With --cli the plan uses every free core, as `python -m resnet_viz preset` does.
Data: --data, else the JPEG copy of CIFAR-10 in ../shared/data (unpacked once), which is what the targets are about.
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time

from benchmarks.train_throughput import SHARED_ARCHIVE, UNPACKED, find_data
from resnet_viz.datasets.cifar10 import load_cifar10
from resnet_viz.training.devices import resolve_device
from resnet_viz.execution.jobs import JobQueue, app_reserved_cores
from resnet_viz.lecture.presets import plan_preset, preset_by_key
from resnet_viz.storage.store import RunStore


def data_folder(explicit: str | None) -> str:
    if explicit:
        return explicit
    if not SHARED_ARCHIVE.is_file():
        sys.exit("No data: pass --data DIR (the budget targets are about real CIFAR-10 images).")
    find_data(None)  # unpacks the JPEG copy once
    return str(UNPACKED / "cifar10-jpeg" if (UNPACKED / "cifar10-jpeg").is_dir() else UNPACKED)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="degradation")
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--data", default=None)
    p.add_argument("--cli", action="store_true", help="use every free core, as the command line does")
    args = p.parse_args()
    data_dir = data_folder(args.data)
    load_cifar10(data_dir, download=False, progress=False)  # decoded and cached before the clock starts
    device = resolve_device("auto")
    reserve = 0 if args.cli else app_reserved_cores()
    plan = plan_preset(preset_by_key(args.preset), args.minutes, device, data_dir, reserve=reserve)
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} · {platform.processor() or platform.machine()} · {device.type} · "
          f"{plan.threads} thread(s) planned · preset {args.preset} · budget {args.minutes:g} min · data {data_dir}")
    for r in plan.runs:
        print(f"plan: {r.config.model.name}: {r.steps} steps, {r.speed.precision}, {r.speed.step_seconds:.3f} s/step, "
              f"~{r.seconds:.0f} s")
    print(f"estimate shown before start: {plan.total_seconds:.0f} s")

    queue = JobQueue()
    if args.cli:
        import resnet_viz.execution.jobs as jobs_module
        jobs_module.app_reserved_cores = lambda: 0
    runs_dir = tempfile.mkdtemp(prefix="live_budget_runs_")
    started = time.perf_counter()
    jobs = queue.submit([r.config for r in plan.runs], owner="benchmark", runs_dir=runs_dir, plans=plan.runs)
    samples = []  # (seconds since start, ETA of the whole queue)
    while queue.busy():
        etas = queue.queue_eta()
        pending = [j for j in queue.jobs() if not j.done]
        if pending and etas.get(pending[-1].id) is not None:
            samples.append((time.perf_counter() - started, etas[pending[-1].id]))
        time.sleep(1.0)
    wall = time.perf_counter() - started
    quarter = 0.25 * plan.total_seconds
    at = min(samples, key=lambda s: abs(s[0] - quarter)) if samples else None
    print(f"real wall time: {wall:.0f} s → estimate error {100 * (plan.total_seconds - wall) / wall:+.1f}%")
    if at:
        real_left = wall - at[0]
        print(f"ETA shown at {at[0]:.0f} s (25% of the plan): {at[1]:.0f} s; real time left then: {real_left:.0f} s "
              f"→ ETA error {100 * (at[1] - real_left) / real_left:+.1f}%")
    store = RunStore(runs_dir)
    for job in queue.jobs():
        run = store.get(job.run_id)
        s = run.summary()
        print(f"run: {run.label}: {run.state}, {s['steps_done']} steps, train error {100 * s['final_train_error']:.1f}%, "
              f"test error {100 * s['final_test_error']:.1f}%, precision {run.status.get('precision')}, threads "
              f"{run.status.get('threads')}, {run.status.get('seconds', 0):.0f} s")
    del jobs


if __name__ == "__main__":
    main()
