"""One run request trained in this process, whichever executor placed it here (a thread of the CLI, the app's child
process, a Ray worker): a new run through `training.train`, an extension through `extend`, its RunState published as
it changes."""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Callable

from .executors import ExecutorKind, RunRequest, RunState, final_message
from ..storage.store import RunStore, atomic_write_json


class _PlacedStore(RunStore):
    """A run store whose new runs record where they train, and say so the moment their folder exists."""

    def __init__(self, root, kind: ExecutorKind, on_create: Callable[[str], None]):
        super().__init__(root)
        self.placement = {"executor": kind.value, "node": socket.gethostname()}
        self.on_create = on_create

    def create(self, config):
        writer = super().create(config)
        writer.heartbeat(**self.placement)  # kept by every later status write
        self.on_create(writer.id)
        return writer


def train_request(state: RunState, request: RunRequest, runs_dir, data, kind: ExecutorKind,
                  stop_event: threading.Event, publish: Callable[[RunState], None], reserve_cores: int = 0):
    """Train `request` here, publishing `state` as it changes; returns the TrainResult. `data`: CIFAR-10, loaded.
    `reserve_cores`: CPU cores left free for this process's other work (the app's server)."""
    def on_create(run_id):
        state.run_id, state.state = run_id, "running"
        publish(state)

    def on_progress(p):
        state.state, state.run_id, state.progress, state.steps = "running", p.run_id, p, p.step
        publish(state)

    state.node, state.pid = socket.gethostname(), os.getpid()
    if request.is_extension:
        from ..training.extend import prepare_extension
        extension = prepare_extension(RunStore(runs_dir), request.extend_run_id, request.extra_epochs, data=data)
        result = extension.run(on_progress=on_progress, stop_event=stop_event, reserve_cores=reserve_cores)
    else:
        from ..training.train_one import train
        result = train(request.config, data=data, store=_PlacedStore(runs_dir, kind, on_create),
                       on_progress=on_progress, stop_event=stop_event, reserve_cores=reserve_cores)
    state.state, state.run_id, state.steps, state.seconds = result.status, result.run_id, result.steps, result.seconds
    state.message = final_message(result.status, result.steps, result.diverged_step)
    publish(state)
    return result


def mark_interrupted(runs_dir, run_id: str | None, message: str) -> None:
    """A killed run cannot write its own end: say it in status.json, so no reader shows the run as still running."""
    if run_id is None:
        return
    path = Path(runs_dir) / run_id / "status.json"
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
        if status.get("status") == "running":
            atomic_write_json(path, dict(status, status="interrupted", message=message, updated=time.time()))
    except (OSError, ValueError):
        pass  # the run folder is unreadable: the store will report it when listed
