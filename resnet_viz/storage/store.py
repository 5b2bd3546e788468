"""The run store: one directory per run, shared by the CLI and the app (and by separate processes).

    <root>/<run id>/config.json          RunConfig, id, name, creation time
                    status.json          status, step, heartbeat, pid/host of the writer, messages
                    metrics.safetensors  per-step and per-evaluation arrays (+ layer names in the metadata)
                    checkpoint.safetensors  the model's state_dict (never pickle), and under "trainer/" what it
                                            takes to continue training exactly (resnet_viz.training.extend)

Every write goes through resnet_viz.storage.files (a temporary file renamed over the old one), so a reader (or a crash)
never sees half a file: a run whose process died keeps the metrics of its last flush and is shown as "interrupted".
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..training.checkpoint import CHECKPOINT_FILE, read_weights
from ..config import RunConfig
from ..errors import ResnetVizError, RunStoreError, StorageError
from .files import (DISK_FULL, PER_EVAL_KEYS, PER_STEP_KEYS, _atomic_write,  # noqa: F401 (re-exported)
                    atomic_write_bytes, atomic_write_json, atomic_write_text, metrics_to_csv, strict_json)
from .run_checks import STATUSES, check_meta, check_metrics, check_status, names_from_metadata
from .writer import RunWriter

RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
HEARTBEAT_STALE_S = 60.0  # a "running" run whose heartbeat is this old is taken as dead
STALE_HEARTBEAT_S = 30 * 60  # the same for runs written before heartbeats (status.json without one)
RUN_FILES = ("config.json", "status.json", "metrics.safetensors", CHECKPOINT_FILE)


def default_runs_dir() -> Path:
    return Path(os.environ.get("RESNET_VIZ_RUNS") or "runs").expanduser()


def sanitize_name(name: str | None, fallback: str = "run") -> str:
    """A display name: printable, one line, at most 80 characters."""
    cleaned = "".join(ch for ch in (name or "") if ch.isprintable()).strip()
    return cleaned[:80] or fallback


def slugify(name: str) -> str:
    """A file-system-safe fragment: no separators, no leading dots, so a name can never escape the store."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return slug[:40].strip("-.") or "run"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, OverflowError, ValueError):
        return False
    return True


@dataclass
class Run:
    """What the store knows about one run. Metrics are read on first use: listing stays cheap."""

    id: str
    path: Path
    name: str
    config: RunConfig
    status: dict
    created: float
    _metrics: dict | None = field(default=None, repr=False)
    _layer_names: list[str] | None = field(default=None, repr=False)
    _branch_names: list[str] | None = field(default=None, repr=False)

    @property
    def state(self) -> str:
        return self.status.get("status", "failed")

    @property
    def label(self) -> str:
        return self.config.model.name

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_FILE

    @property
    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.is_file()

    def _load_metrics(self) -> None:
        path = self.path / "metrics.safetensors"
        if not path.is_file():
            self._metrics, self._layer_names, self._branch_names = {}, [], []
            return
        from safetensors import safe_open
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                metrics = {k: f.get_tensor(k) for k in f.keys()}
            layer_names = names_from_metadata(meta, "layer_names")
            branch_names = names_from_metadata(meta, "branch_names")
            check_metrics(metrics, layer_names, branch_names)
        except Exception as e:  # a torn or foreign file: report, don't crash a listing
            raise RunStoreError(f"Run {self.id}: its metrics file cannot be read ({e}).") from e
        self._metrics, self._layer_names, self._branch_names = metrics, layer_names, branch_names

    @property
    def metrics(self) -> dict[str, np.ndarray]:
        if self._metrics is None:
            self._load_metrics()
        return self._metrics

    @property
    def layer_names(self) -> list[str]:
        if self._layer_names is None:
            self._load_metrics()
        return self._layer_names

    @property
    def branch_names(self) -> list[str]:
        """The residual blocks whose ‖F(x)‖/‖shortcut(x)‖ the run recorded (columns of metrics["branch_ratios"])."""
        if self._layer_names is None:
            self._load_metrics()
        return self._branch_names

    def summary(self) -> dict:
        """One JSON-ready object, as `list --json` prints it."""
        m = self.metrics
        steps = int(self.status.get("step", len(m.get("loss", ()))))

        def last(key):
            arr = m.get(key)
            if arr is None or len(arr) == 0:
                return None
            value = float(arr[-1])
            return value if np.isfinite(value) else None

        loss = m.get("loss")
        tail = loss[-max(1, min(50, len(loss) // 10)):] if loss is not None and len(loss) else None
        return {
            "id": self.id,
            "name": self.name,
            "label": self.label,
            "status": self.state,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.created)),
            "model": self.config.to_dict()["model"],
            "train": self.config.to_dict()["train"],
            "data_dir": self.config.data_dir,
            "steps_done": steps,
            "total_steps": self.status.get("total_steps"),
            "final_train_loss": last("train_loss"),
            "final_train_error": last("train_error"),
            "final_test_loss": last("test_loss"),
            "final_test_error": last("test_error"),
            "final_batch_loss": float(np.mean(tail)) if tail is not None and np.isfinite(tail).all() else None,
            "diverged_step": self.status.get("diverged_step"),
            "message": self.status.get("message"),
            "device": self.status.get("device"),
            "executor": self.status.get("executor"),  # local or ray, and the machine that trained it
            "node": self.status.get("node"),
            "seconds": self.status.get("seconds"),
            "has_checkpoint": self.has_checkpoint,
        }


class RunStore:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser() if root else default_runs_dir()

    # -- creating -------------------------------------------------------------------------------------------------
    def check_writable(self) -> None:
        """Raise RunStoreError unless runs can be saved here (the folder is created if missing). Called before
        anything slow, so a typo in --runs costs a second, not a data load and a failed run."""
        if self.root.exists() and not self.root.is_dir():
            raise RunStoreError(f"The run store {self.root} is a file, not a folder. Point --runs (or the app's run "
                                f"store folder) at a folder.")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=self.root, prefix=".write-test-")
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            raise RunStoreError(f"Runs cannot be saved in {self.root}: {e.strerror or e}. Choose a folder you can "
                                f"write to.") from e

    def create(self, config: RunConfig) -> RunWriter:
        name = sanitize_name(config.name, fallback=config.model.name)
        config.name = name
        run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{slugify(name)}-{uuid.uuid4().hex[:6]}"
        path = self.root / run_id
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            path.mkdir()
            atomic_write_json(path / "config.json",
                              {"id": run_id, "name": name, "created": time.time(), "config": config.to_dict()},
                              what=f"the new run {run_id}")
            writer = RunWriter(path, run_id)
            writer.set_status("running", step=0, started=time.time())
        except OSError as e:
            if path.is_dir():  # half made: a folder without its files would be listed as a broken run
                shutil.rmtree(path, ignore_errors=True)
            if isinstance(e, StorageError):
                raise
            raise RunStoreError(f"Cannot save a run in {self.root}: {e.strerror or e}.") from e
        return writer

    def open_writer(self, run_id: str) -> RunWriter:
        """A writer for an existing run, keeping its status fields (extending a run writes to it in place)."""
        run = self.get(run_id)
        writer = RunWriter(run.path, run.id)
        writer._status = dict(run.status)
        return writer

    # -- reading --------------------------------------------------------------------------------------------------
    def _path(self, run_id: str) -> Path:
        if not isinstance(run_id, str) or not RUN_ID_RE.match(run_id):
            raise RunStoreError(f"{run_id!r} is not a run id (ids are letters, digits, '.', '_' and '-').")
        path = (self.root / run_id)
        if path.resolve().parent != self.root.resolve():
            raise RunStoreError(f"{run_id!r} is not a run in {self.root}.")
        return path

    def _read(self, path: Path) -> Run:
        """Every field is checked (run_checks) before anything uses it: a run with a bad one is a RunStoreError."""
        try:
            meta = json.loads((path / "config.json").read_text(encoding="utf-8"))
            check_meta(meta)
            config = RunConfig.from_dict(meta["config"]).validate()
            status = json.loads((path / "status.json").read_text(encoding="utf-8"))
            check_status(status)
            created = float(meta["created"]) if "created" in meta else path.stat().st_mtime
        except FileNotFoundError as e:
            raise RunStoreError(f"{path.name}: not a run directory (no {Path(e.filename).name}).") from e
        except (ValueError, KeyError, TypeError, AttributeError, OSError, RecursionError, ResnetVizError) as e:
            raise RunStoreError(f"{path.name}: its config or status cannot be read ({e}).") from e
        if status["status"] == "running" and self._writer_is_dead(status):
            status = dict(status, status="interrupted",
                          message="The process training this run stopped before it finished; the metrics up to "
                                  "its last save are kept.")
        # The folder's name is the run's identity (get/delete/export use it); an id inside a copied folder is not.
        return Run(id=path.name, path=path, name=sanitize_name(meta.get("name"), fallback=path.name), config=config,
                   status=status, created=created)

    @staticmethod
    def _writer_is_dead(status: dict) -> bool:
        """A "running" run whose writer is gone: its pid is dead (same host), or its heartbeat stopped."""
        if status.get("host") == socket.gethostname() and status.get("pid") is not None \
                and not _pid_alive(status["pid"]):
            return True
        # A live writer beats every HEARTBEAT_S whatever it is doing; a silent one on this host is a recycled pid
        # or a hung process, on another host a dead one. Runs written before heartbeats get the old, long timeout.
        if status.get("heartbeat") is not None:
            return time.time() - status["heartbeat"] > HEARTBEAT_STALE_S
        return time.time() - float(status.get("updated") or 0) > STALE_HEARTBEAT_S

    def get(self, run_id: str) -> Run:
        path = self._path(run_id)
        if not path.is_dir():
            raise RunStoreError(f"There is no run {run_id!r} in {self.root}.")
        return self._read(path)

    def list(self) -> list[Run]:
        """Every readable run, oldest first. Corrupt or foreign directories are skipped with a warning."""
        if not self.root.exists():
            return []
        if not self.root.is_dir():
            raise RunStoreError(f"The run store {self.root} is a file, not a folder.")
        try:
            paths = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError as e:
            raise RunStoreError(f"The run store {self.root} cannot be read: {e.strerror or e}.") from e
        runs = []
        for path in paths:
            try:
                runs.append(self._read(path))
            except RunStoreError as e:
                warnings.warn(f"Skipping {path}: {e}", stacklevel=2)
            except Exception as e:  # whatever a foreign folder holds, it must not hide the other runs
                warnings.warn(f"Skipping {path}: it cannot be read as a run ({type(e).__name__}: {e}).",
                              stacklevel=2)
        return sorted(runs, key=lambda r: (r.created, r.id))

    def load_model(self, run_id: str, device="cpu"):
        """The trained model of a run, in eval mode."""
        from ..nets.models import build_model
        run = self.get(run_id)
        if not run.has_checkpoint:
            raise RunStoreError(f"Run {run.name!r} has no saved weights (status: {run.state}). Only finished or "
                                f"stopped runs keep a checkpoint.")
        model = build_model(run.config.model)
        try:
            model.load_state_dict(read_weights(run.checkpoint_path, device))
        except Exception as e:
            raise RunStoreError(f"Run {run.name!r}: its checkpoint cannot be loaded ({e}).") from e
        return model.to(device).eval()

    def delete(self, run_id: str) -> None:
        path = self._path(run_id)
        if not path.is_dir():
            raise RunStoreError(f"There is no run {run_id!r} in {self.root}.")
        # Rename first so a reader never sees a half-deleted run, then remove.
        trash = path.with_name(f".deleted-{path.name}-{uuid.uuid4().hex[:6]}")
        try:
            os.replace(path, trash)
        except OSError as e:  # a read-only store: the run stays whole
            raise RunStoreError(f"Run {run_id} cannot be deleted: {self.root} cannot be written to "
                                f"({e.strerror or e}).") from e
        shutil.rmtree(trash, ignore_errors=True)

    # -- export ---------------------------------------------------------------------------------------------------
    def export(self, run_id: str, fmt: str = "csv") -> str:
        run = self.get(run_id)
        if fmt == "json":
            return strict_json({"summary": run.summary(), "layer_names": run.layer_names,
                                "branch_names": run.branch_names, "metrics": run.metrics})
        if fmt != "csv":
            raise RunStoreError(f"Unknown export format {fmt!r}: choose csv or json.")
        return metrics_to_csv(run.metrics, run.layer_names, run.branch_names)
