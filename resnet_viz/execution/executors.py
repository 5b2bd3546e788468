"""Where runs train, behind one protocol: submit a run request, read the runs' states, stop one, collect the ended.

The executors (each a module; `executor_registry.make_executor` picks one by its ExecutorKind):
- `local_executor.LocalExecutor` (`local`): one run after another on this machine's one device — in this process
  (the CLI), or each run in a child process of its own (the app's server: `run_process`).
- `ray_executor.RayExecutor` (`ray`): each run a Ray task on a cluster, side by side.

A run request is a new config or an extension of a saved run (run id + epochs), so either can train anywhere. Every
executor trains through `run_here.train_request` against the same run store, which records where each run trained
(status.json: `executor`, `node`). The CLI drives an executor with `Executor.run`; the app's job queue
(`resnet_viz.execution.jobs`) mirrors the states into its jobs. A new executor: one module with an Executor subclass, one
ExecutorKind member, one line in `executor_registry.make_executor`.
"""
from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum
from typing import Callable

from ..config import RunConfig
from ..errors import ConfigError

FINAL_STATES = ("finished", "stopped", "diverged", "failed", "interrupted", "cancelled")
POLL_SECONDS = 0.5
ABORT_GRACE_S = 10.0  # after a second Ctrl-C: how long the runs get to write `interrupted`
CANCELLED = "Cancelled before it started."


class ExecutorKind(str, Enum):
    """Executor names as configs, status.json, RESNET_VIZ_EXECUTOR and --executor spell them."""
    LOCAL = "local"
    RAY = "ray"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, name: str | None, what: str = "The executor") -> "ExecutorKind":
        try:
            return cls((name or cls.LOCAL.value).strip().lower())
        except ValueError:
            raise ConfigError(f"{what} is {name!r}: it must be one of {', '.join(k.value for k in cls)}.") from None


@dataclass
class RunRequest:
    """What to train: a new run from `config`, or `extra_epochs` more epochs of the saved run `extend_run_id` (then
    `config` is that run's config as shown while it trains — its name says "+N epochs" — and names the data)."""
    config: RunConfig
    extend_run_id: str | None = None
    extra_epochs: float | None = None

    @property
    def label(self) -> str:
        return self.config.label

    @property
    def is_extension(self) -> bool:
        return self.extend_run_id is not None

    def to_dict(self) -> dict:
        return {"config": self.config.to_dict(), "extend_run_id": self.extend_run_id,
                "extra_epochs": self.extra_epochs}

    @classmethod
    def from_dict(cls, d: dict) -> "RunRequest":
        return cls(RunConfig.from_dict(d["config"]), d.get("extend_run_id"), d.get("extra_epochs"))


@dataclass
class RunState:
    """What the driver knows of one run. Plain data: a child process or a Ray task sends it back to the driver."""

    key: int  # the run's number in its executor
    label: str
    state: str = "queued"  # queued, loading data, running, then one of FINAL_STATES
    progress: object | None = None  # the trainer's latest Progress (without its per-layer arrays from elsewhere)
    run_id: str | None = None
    node: str | None = None
    pid: int | None = None
    message: str | None = None
    steps: int = 0
    seconds: float = 0.0

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def started(self) -> bool:
        return self.state != "queued"


def final_message(status: str, steps: int, diverged_step: int | None = None) -> str:
    return {"finished": "Finished and saved.",
            "stopped": f"Stopped at step {steps}; what was trained is saved.",
            "diverged": f"Diverged at step {diverged_step} (the loss became NaN or infinite). Try a lower learning "
                        f"rate."}[status]


class Executor(ABC):
    """The protocol. `submit` returns at once; the runs train elsewhere (a thread, a child process, a cluster)."""

    kind: ExecutorKind

    def __init__(self):
        self._told: dict[int, tuple] = {}  # what `finished` last told of each live run

    @abstractmethod
    def submit(self, request: RunRequest, runs_dir, data=None) -> int:
        """Queue a run; returns its key. `data`: CIFAR-10 already loaded here, for an executor that trains in this
        process (the others read the request's data folder where they train)."""

    @abstractmethod
    def states(self) -> dict[int, RunState]:
        """The latest state of every run not yet collected by `finished`."""

    @abstractmethod
    def stop(self, key: int) -> None:
        """A run not started is cancelled; a training one stops after its current step and keeps what it trained."""

    @abstractmethod
    def abort(self, key: int) -> None:
        """Interrupt a run at once (it ends `interrupted`, keeping its last save): a second Ctrl-C."""

    @abstractmethod
    def _wait_for_ends(self, timeout: float) -> list[RunState]:
        """Wait up to `timeout` seconds; the final states of the runs that ended since the last call."""

    def finished(self, timeout: float = POLL_SECONDS, on_state: Callable[[RunState], None] | None = None
                 ) -> list[RunState]:
        """Wait up to `timeout` seconds; return the final states of the runs that ended since the last call, after
        telling `on_state` the new state of each live run that changed meanwhile (a run's end is told only here,
        once)."""
        ended = self._wait_for_ends(timeout)
        for state in ended:
            self._told.pop(state.key, None)
        if on_state is not None:
            for key, state in self.states().items():
                mark = (state.state, state.steps, state.run_id)
                if not state.done and self._told.get(key) != mark:
                    self._told[key] = mark
                    on_state(state)
        return ended

    def run(self, requests: list, runs_dir, data, on_update: Callable[[RunState], None],
            stop_event: threading.Event) -> list[RunState]:
        """Train every request (a RunRequest or a RunConfig) and wait for all of them: the CLI's way. One failed or
        killed run does not stop the others. `stop_event` (a first Ctrl-C) cancels what has not started and stops the
        started runs after their current step; a KeyboardInterrupt (a second Ctrl-C) interrupts them at once."""
        requests = [r if isinstance(r, RunRequest) else RunRequest(r) for r in requests]
        keys = [self.submit(r, runs_dir, data=data) for r in requests]
        final: dict[int, RunState] = {}
        stopping = False
        try:
            while len(final) < len(keys):
                if stop_event.is_set() and not stopping:
                    stopping = True
                    for key in keys:
                        if key not in final:
                            self.stop(key)
                for state in self.finished(POLL_SECONDS, on_update):
                    final[state.key] = state
                    on_update(state)
        except KeyboardInterrupt:
            for key in keys:
                if key not in final:
                    self.abort(key)
            deadline = time.time() + ABORT_GRACE_S
            while self.states() and time.time() < deadline:
                self.finished(POLL_SECONDS)
            raise
        return [final[k] for k in keys]
