"""Training from the command line, for `train`, `sweep` (cli.py) and `preset` (lecture.py): the executor's
runs with one progress line each, the one Ctrl-C handler (the first stops after the step, the second aborts), and
the numbers the result lines print. Both command modules import this one; it imports neither."""
from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

from ..config import RunConfig
from ..errors import ResnetVizError

STOP_AFTER_STEP = "stopping after this step"


@contextmanager
def stop_on_ctrl_c(what_happens: str = STOP_AFTER_STEP) -> Iterator[threading.Event]:
    """An Event that the first Ctrl-C sets — training stops after its step and saves, and `what_happens` says so on
    stderr; a second Ctrl-C raises KeyboardInterrupt (cli.main: "aborted"). Only the main thread can catch signals:
    elsewhere the Event is set by the caller alone. The previous handler comes back on exit."""
    stop = threading.Event()

    def on_sigint(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print(f"\n{what_happens} (Ctrl-C again to abort) …", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_sigint) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        yield stop
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def run_training(args, configs: list[RunConfig]) -> int:
    """Train the configs on the executor the arguments name (train, sweep, preset): everything that can be refused
    is refused before the data loads; then one progress line per run, and 0 if every run finished or stopped."""
    from ..datasets.cifar10 import load_cifar10
    from ..training.devices import resolve_device
    from ..execution.registry import make_executor
    from ..execution.executors import ExecutorKind
    from ..storage.store import RunStore
    from ..nets.summary import check_fits
    executor = make_executor(args.executor, args.ray_address, args.ray_cpus)
    # Everything that can be checked without the data is checked before loading it (or downloading 170 MB): the
    # configs, the device, the memory a step needs, and that runs can be saved where --runs points.
    for c in configs:
        c.validate()
        if executor.kind is ExecutorKind.LOCAL:
            check_fits(c.model, c.train.batch_size, resolve_device(c.train.device))
    store = RunStore(args.runs)
    store.check_writable()
    data = load_cifar10(args.data, download=not args.no_download)  # on a cluster: checks (or fetches) it once here
    print(f"data: {data.source}", file=sys.stderr)
    if executor.kind is ExecutorKind.RAY:
        print(f"executor: {executor.where}, each run a task with {executor.resources}", file=sys.stderr)
    lines = ProgressLines(store)
    with stop_on_ctrl_c(STOP_AFTER_STEP if executor.kind is ExecutorKind.LOCAL else
                        "cancelling the runs not started, stopping the others after their current step") as stop:
        try:
            states = executor.run(configs, store.root, data, lines.update, stop)
        finally:
            lines.close()
    return 0 if all(s.state in ("finished", "stopped") for s in states) else 1


def show_progress(bar, p) -> None:
    """A trainer Progress on a tqdm bar: step, loss, lr, speed and the latest test error."""
    bar.n = p.step
    post = {"loss": f"{p.loss:.3f}", "lr": f"{p.lr:.3g}", "img/s": f"{p.images_per_second:.0f}"}
    if p.test_error is not None:
        post["test err"] = f"{100 * p.test_error:.1f}%"
    bar.set_postfix(post, refresh=False)
    bar.refresh()


class ProgressLines:
    """One progress line per run while it trains, then one summary line when it ends."""

    def __init__(self, store):
        self.store = store
        self.bars = {}

    def update(self, state) -> None:
        from tqdm import tqdm
        if state.done:
            bar = self.bars.pop(state.key, None)
            if bar is not None:
                bar.close()
            tqdm.write(self._summary(state), file=sys.stdout)
            return
        bar = self.bars.get(state.key)
        if bar is None:
            bar = self.bars[state.key] = tqdm(total=1, desc=state.label, unit="step", dynamic_ncols=True,
                                              file=sys.stderr)
        p = state.progress
        if p is None:
            bar.set_postfix_str(state.state + (f" on {state.node}" if state.node else ""), refresh=True)
            return
        if bar.total != p.total_steps:  # its first step: the clock starts now, not when it was queued
            bar.reset(total=p.total_steps)
        show_progress(bar, p)

    def _summary(self, state) -> str:
        if state.run_id is None:
            return f"{state.label}: {state.state} — {state.message}"
        try:
            summary = self.store.get(state.run_id).summary()
        except ResnetVizError as e:
            return f"{state.label}: {state.state} — {state.message} ({e})  [{state.run_id}]"
        head = f"{summary['name']}: {state.state} after {state.steps} steps in {state.seconds:.0f}s"
        if state.state not in ("finished", "stopped", "diverged"):
            return f"{head} — {state.message}  [{state.run_id}]"
        return (f"{head} — train loss {number(summary['final_train_loss'])}, train error "
                f"{percent(summary['final_train_error'])}, test error {percent(summary['final_test_error'])}  "
                f"[{state.run_id}]")

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()


def number(v) -> str:
    """A loss for a table: three decimals, or "-" where there is none."""
    return "-" if v is None else f"{v:.3f}"


def percent(v) -> str:
    """An error rate (a fraction) for a table: "12.3%", or "-" where there is none."""
    return "-" if v is None else f"{100 * v:.1f}%"
