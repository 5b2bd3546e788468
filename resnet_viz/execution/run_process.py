"""A run trained in a process of its own: how the local executor trains the app's runs (`local_executor`).

Why: a training loop inside the Streamlit server shares the server's interpreter lock with every page rerun of every
watching tab. Measured on 2 cores (2026-12-05): plain-56 trained at 2.4 steps/s with no tab open, 1.28 with one
watching tab and 0.14 with three, while the CPU had room to spare. In a process of its own, a rerun costs the run CPU
time at most, never the lock.

The protocol is small and local: the parent writes one JSON line (the request) to the child's stdin, then "stop" when
the user presses Stop; closing stdin (the server went away) stops the run too, after its current step, keeping what
was trained. The child sends pickled messages on its stdout, which nothing else writes to (its prints go to stderr,
i.e. the server's log): ("state", RunState) while it trains, with the live curves but not the per-layer arrays, and
("result", RunState) at the end. A child that dies without a result (killed, out of memory) leaves its run marked
interrupted.
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
from typing import Callable

from .executors import ExecutorKind, RunRequest, RunState
from .run_here import mark_interrupted, train_request

# Per-layer arrays and their steps: the live charts do not draw them, and the run store has them.
NOT_LIVE = ("grad_norms", "grad_norm_step", "branch_ratios", "branch_ratio_step")
DIED = ("The training process ended without a result (killed, or out of memory); the metrics up to its last save "
        "are kept.")


def _light_metrics(metrics: dict | None) -> dict | None:
    if metrics is None:
        return None
    return {k: v for k, v in metrics.items() if k not in NOT_LIVE}


class TrainingProcess:
    """The parent's handle on one run request training in a child process (a new run, or an extension)."""

    def __init__(self, key: int, request: RunRequest, runs_dir: str, reserve_cores: int = 0):
        message = {"key": key, "label": request.label, "request": request.to_dict(), "runs_dir": str(runs_dir),
                   "reserve_cores": reserve_cores}
        self.runs_dir = str(runs_dir)
        self.state = RunState(key, request.label, state="loading data")
        package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # wherever the server started
        path = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=path, RESNET_VIZ_DEMO_PID=str(os.getpid()))
        self._proc = subprocess.Popen([sys.executable, "-m", "resnet_viz.execution.run_process"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, env=env, cwd=os.getcwd())
        self._stdin_lock = threading.Lock()
        self._send_line(json.dumps(message))

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _send_line(self, line: str) -> None:
        with self._stdin_lock:
            try:
                self._proc.stdin.write(line.encode() + b"\n")
                self._proc.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass  # the child has ended; its end is read from stdout

    def stop(self) -> None:
        """Stop after the current step, keeping what was trained (a run not yet started is cancelled)."""
        self._send_line("stop")

    def kill(self) -> None:
        """End the child at once (its run is then marked interrupted)."""
        try:
            self._proc.kill()
        except OSError:
            pass

    def follow(self, on_state: Callable[[RunState], None]) -> RunState:
        """Read the child's messages until it ends, calling `on_state` with each; returns the final state."""
        final = None
        while True:
            try:
                kind, state = pickle.load(self._proc.stdout)
            except (EOFError, pickle.UnpicklingError, OSError):
                break
            self.state = state
            if kind == "result":
                final = state
                break
            on_state(state)
        self._proc.wait()
        if final is None:
            final = self.state
            final.state = "interrupted" if final.run_id else "failed"
            final.message = DIED if final.run_id else f"The training process could not start (exit code " \
                                                       f"{self._proc.returncode}); the server log says why."
            mark_interrupted(self.runs_dir, final.run_id, DIED)
        return final


# ------------------------------------------------------------------------------------------------- the child ----
def _child() -> None:
    channel = os.fdopen(os.dup(1), "wb")  # the message channel; ordinary prints go to stderr from here on
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    request = json.loads(sys.stdin.readline())
    stop = threading.Event()
    send_lock = threading.Lock()

    def watch_stdin():
        for line in sys.stdin:
            if line.strip() == "stop":
                stop.set()
        stop.set()  # stdin closed: the server is gone, nobody watches; stop and keep what was trained

    threading.Thread(target=watch_stdin, daemon=True).start()

    def send(kind: str, state: RunState) -> None:
        import dataclasses
        progress = state.progress
        if progress is not None:
            progress = dataclasses.replace(progress, metrics=_light_metrics(progress.metrics))
        with send_lock:
            pickle.dump((kind, dataclasses.replace(state, progress=progress)), channel)
            channel.flush()

    state = RunState(request["key"], request["label"], state="loading data", pid=os.getpid())
    try:
        state = _train(request, state, stop, lambda s: send("state", s))
    except Exception as e:  # the parent shows it in one sentence; the traceback goes to the server log
        import traceback

        from ..errors import ResnetVizError
        if not isinstance(e, ResnetVizError):
            traceback.print_exc()
        state.state = "failed"
        state.message = str(e) if isinstance(e, ResnetVizError) else f"Training failed: {type(e).__name__}: {e}"
    send("result", state)


def _train(message: dict, state: RunState, stop: threading.Event, publish) -> RunState:
    from ..datasets.cifar10 import load_cifar10
    from ..datasets.batches import subset_note
    publish(state)
    request = RunRequest.from_dict(message["request"])
    if not request.is_extension:
        request.config.validate()
    data = load_cifar10(request.config.data_dir, download=False, progress=False)
    train_request(state, request, message["runs_dir"], data, ExecutorKind.LOCAL, stop, publish,
                  reserve_cores=message["reserve_cores"])
    if not request.is_extension and (note := subset_note(request.config.train.subset, len(data.train_labels))):
        state.message = f"{state.message} {note}"
    return state


if __name__ == "__main__":
    _child()
