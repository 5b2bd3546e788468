"""The run store: one directory per run, shared by the CLI and the app (and by separate processes).

    <root>/<run id>/config.json          RunConfig, id, name, creation time
                    status.json          status, step, heartbeat, pid/host of the writer, messages
                    metrics.safetensors  per-step and per-evaluation arrays (+ layer names in the metadata)
                    checkpoint.safetensors  the model's state_dict (never pickle)

Every write goes to a temporary file in the same directory and is renamed over the old one, so a reader (or a crash)
never sees half a file: a run whose process died keeps the metrics of its last flush and is shown as "interrupted".
"""
from __future__ import annotations

import csv
import io
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

from .config import RunConfig
from .errors import RunStoreError

STATUSES = ("running", "finished", "stopped", "diverged", "failed", "interrupted")
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
STALE_HEARTBEAT_S = 30 * 60  # a "running" run silent this long is taken as dead even if its pid looks alive
PER_STEP_KEYS = ("loss", "batch_error", "lr")
PER_EVAL_KEYS = ("train_loss", "train_error", "test_loss", "test_error", "eval_time")


def default_runs_dir() -> Path:
    return Path(os.environ.get("RESNET_VIZ_RUNS") or "runs").expanduser()


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    _atomic_write(path, write)


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default))


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


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
    except OSError:
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
    def has_checkpoint(self) -> bool:
        return (self.path / "checkpoint.safetensors").is_file()

    def _load_metrics(self) -> None:
        path = self.path / "metrics.safetensors"
        if not path.is_file():
            self._metrics, self._layer_names, self._branch_names = {}, [], []
            return
        from safetensors import safe_open
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                self._metrics = {k: f.get_tensor(k) for k in f.keys()}
            self._layer_names = json.loads(meta.get("layer_names", "[]"))
            self._branch_names = json.loads(meta.get("branch_names", "[]"))
        except Exception as e:  # a torn or foreign file: report, don't crash a listing
            raise RunStoreError(f"Run {self.id}: its metrics file cannot be read ({e}).") from e

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
            "seconds": self.status.get("seconds"),
            "has_checkpoint": self.has_checkpoint,
        }


class RunWriter:
    """The one writer of a run directory (the trainer holds it)."""

    def __init__(self, path: Path, run_id: str):
        self.path, self.id = path, run_id
        self._status: dict = {}

    def set_status(self, status: str, **extra) -> None:
        assert status in STATUSES, status
        self._status.update(extra)
        self._status.update(status=status, pid=os.getpid(), host=socket.gethostname(), updated=time.time())
        atomic_write_json(self.path / "status.json", self._status)

    def heartbeat(self, **extra) -> None:
        self.set_status(self._status.get("status", "running"), **extra)

    def write_metrics(self, metrics: dict[str, np.ndarray], layer_names: list[str],
                      branch_names: list[str] | None = None) -> None:
        from safetensors.numpy import save_file
        arrays = {k: np.ascontiguousarray(v) for k, v in metrics.items()}
        metadata = {"layer_names": json.dumps(layer_names)}
        if branch_names:
            metadata["branch_names"] = json.dumps(branch_names)
        _atomic_write(self.path / "metrics.safetensors", lambda tmp: save_file(arrays, tmp, metadata=metadata))

    def write_checkpoint(self, model) -> None:
        from safetensors.torch import save_file
        state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        config = (self.path / "config.json").read_text(encoding="utf-8")
        _atomic_write(self.path / "checkpoint.safetensors",
                      lambda tmp: save_file(state, tmp, metadata={"config": config}))


class RunStore:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser() if root else default_runs_dir()

    # -- creating -------------------------------------------------------------------------------------------------
    def create(self, config: RunConfig) -> RunWriter:
        self.root.mkdir(parents=True, exist_ok=True)
        name = sanitize_name(config.name, fallback=config.model.name)
        config.name = name
        run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{slugify(name)}-{uuid.uuid4().hex[:6]}"
        path = self.root / run_id
        path.mkdir()
        atomic_write_json(path / "config.json",
                          {"id": run_id, "name": name, "created": time.time(), "config": config.to_dict()})
        writer = RunWriter(path, run_id)
        writer.set_status("running", step=0, started=time.time())
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
        try:
            meta = json.loads((path / "config.json").read_text(encoding="utf-8"))
            config = RunConfig.from_dict(meta["config"])
            status = json.loads((path / "status.json").read_text(encoding="utf-8"))
            if status.get("status") not in STATUSES:
                raise ValueError(f"unknown status {status.get('status')!r}")
        except FileNotFoundError as e:
            raise RunStoreError(f"{path.name}: not a run directory (no {Path(e.filename).name}).") from e
        except (ValueError, KeyError, TypeError, OSError) as e:
            raise RunStoreError(f"{path.name}: its config or status cannot be read ({e}).") from e
        if status["status"] == "running" and self._writer_is_dead(status):
            status = dict(status, status="interrupted",
                          message="The process training this run stopped before it finished; the metrics up to "
                                  "its last save are kept.")
        return Run(id=meta.get("id", path.name), path=path, name=meta.get("name", path.name), config=config,
                   status=status, created=float(meta.get("created", path.stat().st_mtime)))

    @staticmethod
    def _writer_is_dead(status: dict) -> bool:
        if time.time() - float(status.get("updated", 0)) > STALE_HEARTBEAT_S:
            return True
        if status.get("host") == socket.gethostname() and isinstance(status.get("pid"), int):
            return not _pid_alive(status["pid"])
        return False

    def get(self, run_id: str) -> Run:
        path = self._path(run_id)
        if not path.is_dir():
            raise RunStoreError(f"There is no run {run_id!r} in {self.root}.")
        return self._read(path)

    def list(self) -> list[Run]:
        """Every readable run, oldest first. Corrupt or foreign directories are skipped with a warning."""
        if not self.root.is_dir():
            return []
        runs = []
        for path in sorted(self.root.iterdir()):
            if not path.is_dir() or path.name.startswith("."):
                continue
            try:
                runs.append(self._read(path))
            except RunStoreError as e:
                warnings.warn(f"Skipping {path}: {e}", stacklevel=2)
        return sorted(runs, key=lambda r: (r.created, r.id))

    def load_model(self, run_id: str, device="cpu"):
        """The trained model of a run, in eval mode."""
        from safetensors.torch import load_file

        from .models import build_model
        run = self.get(run_id)
        if not run.has_checkpoint:
            raise RunStoreError(f"Run {run.name!r} has no saved weights (status: {run.state}). Only finished or "
                                f"stopped runs keep a checkpoint.")
        model = build_model(run.config.model)
        try:
            state = load_file(str(run.path / "checkpoint.safetensors"), device=str(device))
            model.load_state_dict(state)
        except Exception as e:
            raise RunStoreError(f"Run {run.name!r}: its checkpoint cannot be loaded ({e}).") from e
        return model.to(device).eval()

    def delete(self, run_id: str) -> None:
        path = self._path(run_id)
        if not path.is_dir():
            raise RunStoreError(f"There is no run {run_id!r} in {self.root}.")
        # Rename first so a reader never sees a half-deleted run, then remove.
        trash = path.with_name(f".deleted-{path.name}-{uuid.uuid4().hex[:6]}")
        os.replace(path, trash)
        shutil.rmtree(trash, ignore_errors=True)

    # -- export ---------------------------------------------------------------------------------------------------
    def export(self, run_id: str, fmt: str = "csv") -> str:
        run = self.get(run_id)
        if fmt == "json":
            return json.dumps({"summary": run.summary(), "layer_names": run.layer_names,
                               "metrics": {k: v.tolist() for k, v in run.metrics.items()}},
                              default=_json_default, allow_nan=True)
        if fmt != "csv":
            raise RunStoreError(f"Unknown export format {fmt!r}: choose csv or json.")
        return metrics_to_csv(run.metrics, run.layer_names, run.branch_names)


def metrics_to_csv(m: dict[str, np.ndarray], layer_names: list[str], branch_names: list[str] = ()) -> str:
    """One row per training step; evaluation, gradient-norm and branch-ratio columns are filled on the steps that
    have them."""
    n = len(m.get("loss", ()))
    evals = {int(s): i for i, s in enumerate(m.get("eval_step", ()))}
    grads = {int(s): i for i, s in enumerate(m.get("grad_norm_step", ()))}
    ratios = m.get("branch_ratios")
    branch_names = list(branch_names) if ratios is not None and ratios.ndim == 2 and \
        ratios.shape[1] == len(branch_names) else []
    probes = {int(s): i for i, s in enumerate(m.get("branch_ratio_step", ()))} if branch_names else {}
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["step", *PER_STEP_KEYS, *PER_EVAL_KEYS[:-1], *(f"grad_norm:{name}" for name in layer_names),
                *(f"branch_ratio:{name}" for name in branch_names)])
    steps = sorted(set(range(n)) | set(evals))
    for s in steps:
        row = [s] + [_fmt(m[k][s]) if s < n and k in m else "" for k in PER_STEP_KEYS]
        row += [_fmt(m[k][evals[s]]) if s in evals else "" for k in PER_EVAL_KEYS[:-1]]
        row += [_fmt(v) for v in m["grad_norms"][grads[s]]] if s in grads else [""] * len(layer_names)
        row += [_fmt(v) for v in ratios[probes[s]]] if s in probes else [""] * len(branch_names)
        w.writerow(row)
    return out.getvalue()


def _fmt(v) -> str:
    return f"{float(v):.6g}"
