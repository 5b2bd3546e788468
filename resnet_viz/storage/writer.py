"""The one writer of a run's folder while it trains (the trainer holds it): status.json with a heartbeat, the
metrics, the checkpoint and the config, each replaced whole (files.py) so that readers — the app, the CLI, another
host — never see half a file.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

import numpy as np

from ..training.checkpoint import CHECKPOINT_FILE, TRAINING_STATE_PREFIX
from .files import DISK_FULL, _atomic_write, atomic_write_json
from .run_checks import STATUSES

HEARTBEAT_S = 10.0  # a running writer rewrites status.json this often, however long its steps take


class RunWriter:
    """The one writer of a run directory (the trainer holds it).

    While the run is "running", a background thread rewrites status.json every HEARTBEAT_S seconds with a fresh
    `heartbeat` time, so a reader on another host can tell a slow run from a dead one."""

    def __init__(self, path: Path, run_id: str):
        self.path, self.id = path, run_id
        self._status: dict = {}
        self._lock = threading.Lock()  # the trainer and the heartbeat thread both write status.json
        self._beating: threading.Event | None = None  # set = stop the heartbeat thread

    def set_status(self, status: str, **extra) -> None:
        """Record the run's state. Raises StorageError when status.json cannot be written (the status kept in memory
        is updated all the same, and a run that is no longer running stops its heartbeat either way)."""
        assert status in STATUSES, status
        if status != "running":
            self._stop_heartbeat()
        with self._lock:
            self._status.update(extra)
            now = time.time()
            self._status.update(status=status, pid=os.getpid(), host=socket.gethostname(), updated=now,
                                heartbeat=now)
            atomic_write_json(self.path / "status.json", self._status, what=f"the status of run {self.id}")
        if status == "running":
            self._start_heartbeat()

    def _start_heartbeat(self) -> None:
        if self._beating is not None:
            return
        self._beating = threading.Event()
        threading.Thread(target=self._beat, args=(self._beating,), name=f"heartbeat-{self.id}", daemon=True).start()

    def _stop_heartbeat(self) -> None:
        if self._beating is not None:
            self._beating.set()
            self._beating = None

    def _beat(self, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_S):
            with self._lock:
                if stop.is_set() or self._status.get("status") != "running":
                    return
                self._status["heartbeat"] = time.time()
                try:
                    atomic_write_json(self.path / "status.json", self._status)
                except OSError as e:  # a StorageError too
                    if e.errno in DISK_FULL:  # the trainer's next save says so; beat again should room appear
                        continue
                    return  # the run was deleted or its disk went away: nothing left to keep alive

    def heartbeat(self, **extra) -> None:
        self.set_status(self._status.get("status", "running"), **extra)

    def write_metrics(self, metrics: dict[str, np.ndarray], layer_names: list[str],
                      branch_names: list[str] | None = None) -> None:
        from safetensors.numpy import save_file
        arrays = {k: np.ascontiguousarray(v) for k, v in metrics.items()}
        metadata = {"layer_names": json.dumps(layer_names)}
        if branch_names:
            metadata["branch_names"] = json.dumps(branch_names)
        _atomic_write(self.path / "metrics.safetensors", lambda tmp: save_file(arrays, tmp, metadata=metadata),
                      what=f"the curves of run {self.id}", size=_safetensors_size(arrays.values(), metadata))

    def write_checkpoint(self, model, training_state: dict | None = None, metadata: dict[str, str] | None = None
                         ) -> None:
        """The model's state_dict, plus `training_state` tensors (keys under TRAINING_STATE_PREFIX) and string
        `metadata`, in one file: weights and the state to continue from them are replaced together."""
        from safetensors.torch import save_file
        state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        for key, tensor in (training_state or {}).items():
            assert key.startswith(TRAINING_STATE_PREFIX), key
            state[key] = tensor.detach().to("cpu").contiguous()
        config = (self.path / "config.json").read_text(encoding="utf-8")
        metadata = {**(metadata or {}), "config": config}
        _atomic_write(self.path / CHECKPOINT_FILE, lambda tmp: save_file(state, tmp, metadata=metadata),
                      what=f"the weights of run {self.id}", size=_safetensors_size(state.values(), metadata))

    def write_config(self, meta: dict) -> None:
        """Replace config.json: {"id", "name", "created", "config", …} as RunStore.create wrote it."""
        atomic_write_json(self.path / "config.json", meta, what=f"the config of run {self.id}")


def _safetensors_size(tensors, metadata: dict[str, str]) -> int:
    """About the bytes a safetensors file of these tensors takes: their data, and a header that names each one."""
    data = sum(t.nbytes for t in tensors)
    return data + 8 + 128 * len(tensors) + sum(len(k) + len(v) for k, v in metadata.items())
