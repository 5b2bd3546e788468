"""The command line's lecture commands: `preset` (an experiment sized to the minutes you have), `extend` (train a run
further), `pack` and `unpack` (move runs between machines). `cli.py` parses the arguments and dispatches here; what both
share (training with progress lines, Ctrl-C) is in `training.py`."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

from .training import number, percent, run_training, show_progress, stop_on_ctrl_c
from ..execution.executors import ExecutorKind
from ..lecture.presets import PRESETS


@contextmanager
def _progress_bar(desc: str):
    """One line of progress on stderr; yields the trainer's on_progress callback."""
    from tqdm import tqdm
    bar = tqdm(total=1, desc=desc, unit="step", dynamic_ncols=True, file=sys.stderr)

    def on_progress(p):
        bar.total = p.total_steps
        show_progress(bar, p)
    try:
        yield on_progress
    finally:
        bar.close()


def _print_result(store, name: str, result) -> None:
    summary = store.get(result.run_id).summary()
    print(f"{name}: {result.status} after {result.steps} steps in {result.seconds:.0f}s — "
          f"train loss {number(summary['final_train_loss'])}, train error "
          f"{percent(summary['final_train_error'])}, test error {percent(summary['final_test_error'])}  [{result.run_id}]")


def cmd_extend(args) -> int:
    from ..datasets.cifar10 import load_cifar10
    from ..training.extend import check_epochs, check_extendable, epochs_text, prepare_extension
    from ..storage.store import RunStore
    store = RunStore(args.runs)
    check_epochs(args.epochs)  # before minutes of loading CIFAR-10
    run = store.get(args.run_id)
    check_extendable(run)
    data_dir = args.data
    if data_dir is None and run.config.data_dir and Path(run.config.data_dir).expanduser().is_dir():
        data_dir = run.config.data_dir
    data = load_cifar10(data_dir, download=not args.no_download)
    print(f"data: {data.source}", file=sys.stderr)
    extension = prepare_extension(store, run.id, args.epochs, data=data, device=args.device)
    for note in extension.notes:
        print(f"note: {note}", file=sys.stderr)
    with stop_on_ctrl_c() as stop:
        with _progress_bar(f"{run.label} +{epochs_text(args.epochs)}") as on_progress:
            result = extension.run(on_progress=on_progress, stop_event=stop)
    _print_result(store, run.label, result)
    return 0 if result.status in ("finished", "stopped") else 1


def cmd_pack(args) -> int:
    from ..storage.packs import pack_runs
    from ..storage.store import RunStore
    ids = pack_runs(RunStore(args.runs), args.run_ids, args.output)
    size = Path(args.output).expanduser().stat().st_size
    print(f"packed {len(ids)} run(s) into {args.output} ({size / 2 ** 20:.1f} MB)", file=sys.stderr)
    return 0


def cmd_unpack(args) -> int:
    from ..storage.packs import unpack
    from ..storage.store import RunStore
    result = unpack(RunStore(args.runs), args.pack, rename_clashes=args.rename)
    for original, added in result.added:
        print(added)
        if added != original:
            print(f"note: {original} is already in the store, so the incoming copy is {added}", file=sys.stderr)
    for run_id in result.skipped:
        print(f"skipped {run_id}: the store already has a run with this id (--rename keeps both)", file=sys.stderr)
    return 0


def cmd_preset(args) -> int:
    """Plan an experiment for this machine and the minutes given, print the plan, then train it."""
    if args.list or not args.preset:
        for p in PRESETS:
            print(f"{p.key:12s} {p.title}: {', '.join(m.name for m in p.models)}")
        if not args.list:
            print("\nerror: name an experiment, e.g. `preset degradation --minutes 3`", file=sys.stderr)
            return 2
        return 0
    import time

    from ..lecture.presets import describe_training, plan_preset, preset_by_key, preset_needs_measuring
    from ..training.devices import resolve_device
    device = resolve_device(args.device)
    preset = preset_by_key(args.preset)
    if args.remeasure or preset_needs_measuring(preset, device):
        print("measuring this machine (a few timed steps per net; cached afterwards) …", file=sys.stderr)
    plan = plan_preset(preset, args.minutes, device, args.data, refresh=args.remeasure)
    print(f"plan for {args.minutes:g} min on {device.type}"
          + (f" ({plan.threads} thread{'s' if plan.threads != 1 else ''})" if plan.threads else "") + ":",
          file=sys.stderr)
    for r in plan.runs:
        print(f"  {r.config.model.name:12s} {r.steps:6,d} steps  {r.speed.precision}  "
              f"{r.speed.step_seconds:.3f} s/step  ~{r.seconds:.0f} s", file=sys.stderr)
    print(f"  {describe_training(plan.runs[0].config.train)}", file=sys.stderr)
    print(f"  estimated total: {plan.total_seconds:.0f} s", file=sys.stderr)
    if args.plan_only:
        return 0
    for name, default in (("executor", ExecutorKind.LOCAL.value), ("ray_address", None), ("ray_cpus", None)):
        if not hasattr(args, name):  # what run_training reads from a train command's arguments
            setattr(args, name, default)
    started = time.perf_counter()
    code = run_training(args, [r.config for r in plan.runs])
    print(f"wall time {time.perf_counter() - started:.0f} s (estimated {plan.total_seconds:.0f} s)", file=sys.stderr)
    return code
