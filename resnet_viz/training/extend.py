"""Extending a run: "train N more epochs" continues a finished or stopped run from its checkpoint, in place.

The run keeps its id; its curves and gradient norms are appended to, steps numbered on, and its config then records
the new total (epochs; no max_steps). Training continues from the checkpoint's weights, BatchNorm statistics, SGD
momentum and data order (`resnet_viz.training.checkpoint`), so 1 epoch and then 1 more equals 2 epochs straight: this module
reads them into the StartState the training loop begins from; the loop itself knows nothing of extending.

Choices a user should know:
- Evaluations keep the run's own cadence (an automatic one would squeeze a dozen into the new steps).
- Learning rate: a constant schedule simply goes on (warm-up included). Any other schedule holds the run's last
  learning rate for all the new steps: stretching a step, cosine or one-cycle schedule over the new total would
  throw the learning rate back up in the middle of a trained run.
- A checkpoint written before optimizer state was saved still extends, with a note: momentum restarts from zero and
  the data order is a new one. The same goes for the data order when the device kind changed (a CUDA generator's
  state does not fit a CPU one).
- Safety: the run's config, status and metrics are kept in memory while it extends; if the extension fails or is
  aborted they are put back as they were. The checkpoint is replaced only when the extension finishes or is stopped
  (a stopped extension is a stopped run, which can be extended again). A diverged extension keeps its curves up to
  the divergence and the earlier checkpoint; extending again continues from that checkpoint and replaces the curves
  after it.
"""
from __future__ import annotations

import copy
import json
import math
import os
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .checkpoint import SavedTraining, read_checkpoint
from ..config import RunConfig
from ..datasets.cifar10 import Cifar10Tensors, load_cifar10
from .devices import resolve_device
from ..errors import ConfigError, RunStoreError
from ..storage.files import storage_error
from .loop_io import StartState, TrainResult
from .schedule import StepPlan, eval_interval, lr_at
from ..storage.store import Run, RunStore, _pid_alive, atomic_write_bytes, atomic_write_json
from ..storage.writer import RunWriter
from .trainer import Progress
from .train_one import train

LOCK_FILE = ".extending"
LOCK_STALE_S = 24 * 3600  # nobody extends one run for a day: such a lock was left behind
MAX_EXTRA_EPOCHS = 10_000


def epochs_text(epochs: float) -> str:
    return f"{epochs:g} epoch{'' if epochs == 1 else 's'}"


def check_extendable(run: Run) -> None:
    """Raise RunStoreError, in one sentence, unless the run can be trained further."""
    if run.state == "running":
        raise RunStoreError(f"Run {run.id} is still training; extend it once it has finished or been stopped.")
    if not run.has_checkpoint:
        raise RunStoreError(f"Run {run.id} has no saved weights (status: {run.state}); only a finished or stopped "
                            f"run can be trained further.")


class Extension:
    """One extension of one run, checked and planned (`prepare_extension`); `run()` trains it from the saved state
    (`start_state`) instead of from scratch."""

    def __init__(self, store: RunStore, run: Run, saved: SavedTraining, start: int, epochs: float,
                 config: RunConfig, data: Cifar10Tensors, device: torch.device):
        self.store, self.run_id, self.saved, self.start, self.epochs = store, run.id, saved, start, epochs
        self.config, self.data = config, data
        self.saved_metrics = run.metrics
        self._as_read = (run.status.get("updated"), run.status.get("step"))
        self.previous_seconds = float(run.status.get("seconds") or 0.0)
        self.writer: RunWriter | None = None
        tc = config.train
        self.exact_order = (saved.generator_state is not None and saved.generator_device == device.type
                            and saved.step is not None)
        self.hold_lr = None
        if tc.schedule != "constant":
            # the curves keep lr in float32: 7 digits give back the value the schedule set (0.01, not 0.0099999998)
            self.hold_lr = float(f"{self.saved_metrics['lr'][start - 1]:.7g}") if start > 0 else lr_at(0, 1, tc)
        self.notes = []
        if not saved.momentum:
            self.notes.append("this checkpoint has no optimizer state, so momentum restarts from zero")
        if not self.exact_order:
            self.notes.append("the data order cannot continue exactly (an older checkpoint, or another kind of "
                              "device), so a new one begins")
        if self.hold_lr is not None:
            self.notes.append(f"the {tc.schedule} schedule had reached lr {self.hold_lr:.3g}; the new steps keep it")
        if run.state == "diverged":
            self.notes.append(f"continuing from the checkpoint at step {start}; the diverged curves after it are "
                              f"replaced")

    @property
    def total(self) -> int:
        return round(self.config.train.epochs * self.steps_per_epoch)

    @property
    def steps_per_epoch(self) -> int:
        tc = self.config.train
        n_train = len(self.data.train_labels) if not tc.subset else min(tc.subset, len(self.data.train_labels))
        return StepPlan.for_run(n_train, tc).steps_per_epoch

    def start_state(self) -> StartState:
        """The saved weights, momentum, data order and curves, as the training loop takes them."""
        saved = self.saved
        return StartState(
            run_id=self.run_id, step=self.start, weights=saved.weights, momentum=saved.momentum,
            metrics=self.saved_metrics, order_seed=self.config.train.seed + self.start,
            generator_state=saved.generator_state if self.exact_order else None,
            epoch_perm=saved.epoch_perm if self.exact_order else None,
            perm_start=saved.perm_start if self.exact_order and saved.epoch_perm is not None else self.start,
            hold_lr=self.hold_lr, previous_seconds=self.previous_seconds)

    # -- running it -----------------------------------------------------------------------------------------------
    def run(self, on_progress: Callable[[Progress], None] | None = None, stop_event: threading.Event | None = None,
            reserve_cores: int = 0) -> TrainResult:
        """Train the extra steps into the run. On an error or Ctrl-C the run's files are put back as they were."""
        path = self.store.get(self.run_id).path
        with _claim(path):
            run = self.store.get(self.run_id)  # again, now that no one else can start on it
            check_extendable(run)
            if (run.status.get("updated"), run.status.get("step")) != self._as_read:
                raise RunStoreError(f"Run {self.run_id} changed since this extension was planned; plan it again.")
            before = {name: (path / name).read_bytes() for name in ("config.json", "status.json",
                                                                    "metrics.safetensors") if (path / name).exists()}
            self.writer = self.store.open_writer(self.run_id)
            meta = json.loads(before["config.json"])
            meta["config"] = self.config.to_dict()
            meta.setdefault("extensions", []).append({
                "from_step": self.start, "to_step": self.total, "epochs": self.epochs,
                "lr": "schedule" if self.hold_lr is None else self.hold_lr, "notes": self.notes,
                "started": time.time()})
            self.writer.write_config(meta)
            try:
                return train(self.config, data=self.data, writer=self.writer, start=self.start_state(),
                             on_progress=on_progress, stop_event=stop_event, reserve_cores=reserve_cores)
            except BaseException as e:
                _put_back(path, before, f"Training {epochs_text(self.epochs)} more did not complete "
                                        f"({type(e).__name__}: {e}); the run is as it was before.")
                raise


def check_epochs(epochs) -> None:
    if (not isinstance(epochs, (int, float)) or isinstance(epochs, bool) or not math.isfinite(epochs)
            or not 0 < epochs <= MAX_EXTRA_EPOCHS):
        raise ConfigError(f"Train a positive number of further epochs (at most {MAX_EXTRA_EPOCHS:,}), got {epochs!r}.")


def prepare_extension(store: RunStore, run_id: str, epochs: float, data: Cifar10Tensors | None = None,
                      device: str | None = None) -> Extension:
    """Check that `run_id` can be trained `epochs` more epochs and plan it; nothing is written yet. Raises a
    ResnetVizError (ConfigError, RunStoreError, DataError) with a one-sentence reason otherwise."""
    check_epochs(epochs)
    run = store.get(run_id)
    check_extendable(run)
    saved = read_checkpoint(run.checkpoint_path)
    start = saved.step
    if start is None:  # an older checkpoint: it was written at the end of the run
        if run.state not in ("finished", "stopped"):
            raise RunStoreError(f"Run {run.id}'s checkpoint does not say at which step it was written.")
        start = int(run.status.get("step", 0))
    if len(run.metrics.get("loss", ())) < start:
        raise RunStoreError(f"Run {run.id}'s curves end before its checkpoint (step {start}); it cannot be extended.")
    config = copy.deepcopy(run.config)
    moved = None
    if device is not None:
        config.train.device = device
    else:
        try:
            resolve_device(config.train.device)
        except ConfigError:  # e.g. trained with device "cuda" on a GPU box, extended on a laptop
            moved = f"the run was trained with device {config.train.device!r}, which is not here; it goes on with auto"
            config.train.device = "auto"
    if data is None:
        recorded = config.data_dir
        data = load_cifar10(recorded if recorded and Path(recorded).expanduser().is_dir() else None)
    extension = Extension(store, run, saved, start, float(epochs), config, data, resolve_device(config.train.device))
    if moved:
        extension.notes.insert(0, moved)
    per_epoch = extension.steps_per_epoch
    config.train.epochs = (start + max(1, round(epochs * per_epoch))) / per_epoch
    config.train.max_steps = None
    if not config.train.eval_every:  # the run's own cadence, not a dozen evaluations squeezed into the new steps
        config.train.eval_every = own_eval_interval(run.metrics, start)
    config.validate()
    return extension


def own_eval_interval(metrics: dict, start: int) -> int:
    """The steps between a run's evaluations, as recorded (its first two, at steps 0 and the interval), or the
    interval its `start` steps would have had by default when it recorded fewer."""
    evals = np.asarray(metrics.get("eval_step", ()), dtype=int)
    evals = evals[evals <= start]
    if len(evals) >= 2 and evals[1] > evals[0]:
        return int(evals[1] - evals[0])
    return eval_interval(start)


def extend_run(store: RunStore, run_id: str, epochs: float, data: Cifar10Tensors | None = None,
               device: str | None = None, **run_kwargs) -> TrainResult:
    """Train run `run_id` `epochs` more epochs, in place (see the module docstring). `run_kwargs`: on_progress,
    stop_event, reserve_cores, as for the Trainer."""
    return prepare_extension(store, run_id, epochs, data=data, device=device).run(**run_kwargs)


def _put_back(path: Path, before: dict[str, bytes], message: str) -> None:
    """Restore the run's files as they were before the extension, each as far as it can be written: a full disk
    must not hide the error that ended the extension. A file that cannot be put back keeps the extension's last
    save, which is a readable run too (its checkpoint is still the one from before)."""
    for name in ("metrics.safetensors", "config.json", "status.json"):  # the shorter curves first: they free room
        if name not in before:
            continue
        try:
            if name == "status.json":
                status = json.loads(before[name])
                status["message"] = message
                atomic_write_json(path / name, status)
            else:
                atomic_write_bytes(path / name, before[name])
        except OSError:  # a StorageError too
            pass
    if "metrics.safetensors" not in before:
        (path / "metrics.safetensors").unlink(missing_ok=True)


@contextmanager
def _claim(path: Path):
    """Hold the run's lock file while extending it, so two processes never extend one run at once. A lock left by
    a process that died is taken over."""
    lock = path / LOCK_FILE
    holder = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}).encode()
    for attempt in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            if attempt or _lock_holder_alive(lock):
                raise RunStoreError(f"Run {path.name} is being extended by another process right now.") from None
            lock.unlink(missing_ok=True)
        except OSError as e:  # a read-only folder; nothing was changed
            raise storage_error(e, path, f"the lock that marks run {path.name} as being extended") from e
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(holder)
        except OSError as e:  # a full disk; nothing of the run was changed yet
            raise storage_error(e, path, f"the lock that marks run {path.name} as being extended",
                                len(holder)) from e
        yield
    finally:
        lock.unlink(missing_ok=True)


def _lock_holder_alive(lock: Path) -> bool:
    try:
        age = time.time() - lock.stat().st_mtime
        holder = json.loads(lock.read_text(encoding="utf-8"))
        if holder["host"] == socket.gethostname():
            return _pid_alive(int(holder["pid"]))
    except FileNotFoundError:
        return False
    except (OSError, ValueError, KeyError, TypeError):  # being written this moment, or garbage
        return age < 60
    return age < LOCK_STALE_S  # another machine's process (a shared folder): trust it for a day
