"""What a run folder's files may hold. Every field the store reads from disk is checked here, so a hand-edited,
half-copied or foreign run fails with one sentence naming the field, and the store can skip just that run.

Each check raises ValueError with a short description ("status.json: 'step' is 'many', not a whole number"); the
store turns it into a RunStoreError that names the run."""
from __future__ import annotations

import json

import numpy as np

from ..config import is_finite, is_whole

STATUSES = ("running", "finished", "stopped", "diverged", "failed", "interrupted")
LATEST_TIME = 253_402_300_799  # 9999-12-31: later "times" are garbage, and time.localtime() overflows on them
MAX_PID = 2**31 - 1  # os.kill takes a C int


def _whole(file: str, key: str, value, low: int = 0, high: int | None = None) -> None:
    if not is_whole(value) or value < low or (high is not None and value > high):
        raise ValueError(f"{file}: {key!r} is {_show(value)}, not a whole number"
                         + (f" from {low} to {high}" if high is not None else f" ≥ {low}"))


def _time(file: str, key: str, value) -> None:
    if not is_finite(value) or not 0 <= value <= LATEST_TIME:
        raise ValueError(f"{file}: {key!r} is {_show(value)}, not a time")


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "…"


def check_meta(meta) -> None:
    """config.json: {"id", "name", "created", "config"}; the config itself is validated by RunConfig."""
    if not isinstance(meta, dict):
        raise ValueError(f"config.json holds {type(meta).__name__}, not an object")
    if not isinstance(meta.get("config"), dict):
        raise ValueError(f"config.json: 'config' is {_show(meta.get('config'))}, not an object")
    if "name" in meta and not isinstance(meta["name"], str):
        raise ValueError(f"config.json: 'name' is {_show(meta['name'])}, not text")
    if "created" in meta:
        _time("config.json", "created", meta["created"])


# Optional status.json fields and what they must be when present (the trainer writes them; other writers, such as
# an executor recording where a run went, may add fields of their own, which are left alone).
_STATUS_WHOLE = ("step", "total_steps", "diverged_step", "layer_names")
_STATUS_TIMES = ("updated", "heartbeat", "started", "finished")
_STATUS_NUMBERS = ("seconds", "images_per_second")
_STATUS_TEXT = ("message", "host", "device")


def check_status(status) -> None:
    if not isinstance(status, dict):
        raise ValueError(f"status.json holds {type(status).__name__}, not an object")
    state = status.get("status")
    if not isinstance(state, str) or state not in STATUSES:
        raise ValueError(f"status.json: unknown status {_show(state)} (expected one of {', '.join(STATUSES)})")
    for key in _STATUS_WHOLE:
        if status.get(key) is not None:
            _whole("status.json", key, status[key])
    if status.get("pid") is not None:
        _whole("status.json", "pid", status["pid"], 1, MAX_PID)
    for key in _STATUS_TIMES:
        if status.get(key) is not None:
            _time("status.json", key, status[key])
    for key in _STATUS_NUMBERS:
        if status.get(key) is not None and not (is_finite(status[key]) and status[key] >= 0):
            raise ValueError(f"status.json: {key!r} is {_show(status[key])}, not a number ≥ 0")
    for key in _STATUS_TEXT:
        if status.get(key) is not None and not isinstance(status[key], str):
            raise ValueError(f"status.json: {key!r} is {_show(status[key])}, not text")


def names_from_metadata(meta: dict, key: str) -> list[str]:
    """The layer (or block) names stored as JSON in the metrics file's metadata."""
    try:
        names = json.loads(meta.get(key, "[]"))
    except ValueError:
        raise ValueError(f"metrics.safetensors: its {key} are not valid JSON") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"metrics.safetensors: its {key} are not a list of names")
    return names


# Arrays that share a length: per training step, per evaluation. Step-number arrays index the others and must be
# whole numbers.
_PER_STEP = ("step", "loss", "batch_error", "lr")
_PER_EVAL = ("eval_step", "train_loss", "train_error", "test_loss", "test_error", "eval_time")
_STEP_NUMBERS = ("step", "eval_step", "grad_norm_step", "branch_ratio_step")


def check_metrics(m: dict[str, np.ndarray], layer_names: list[str], branch_names: list[str]) -> None:
    """Shapes and kinds that the charts, the summary and the CSV export rely on."""
    for key, arr in m.items():
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"metrics.safetensors: {key!r} holds {arr.dtype} values, not real numbers")
        if key in _STEP_NUMBERS and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"metrics.safetensors: {key!r} holds {arr.dtype} values, not step numbers")
        if key in _STEP_NUMBERS and len(arr) and arr.min() < 0:
            raise ValueError(f"metrics.safetensors: {key!r} holds negative step numbers")
    for group in (_PER_STEP, _PER_EVAL):
        present = [k for k in group if k in m]
        for key in present:
            if m[key].ndim != 1:
                raise ValueError(f"metrics.safetensors: {key!r} has shape {list(m[key].shape)}, not one value per "
                                 f"{'step' if group is _PER_STEP else 'evaluation'}")
        if len({len(m[k]) for k in present}) > 1:
            raise ValueError(f"metrics.safetensors: {', '.join(present)} have different lengths "
                             f"({', '.join(str(len(m[k])) for k in present)})")
    if "eval_step" in m:
        missing = [k for k in _PER_EVAL[1:-1] if k not in m]  # eval_time is optional (older runs lack it)
        if missing:
            raise ValueError(f"metrics.safetensors: evaluations without {', '.join(missing)}")
    for steps_key, table_key, names, what in (("grad_norm_step", "grad_norms", layer_names, "layer"),
                                              ("branch_ratio_step", "branch_ratios", branch_names, "block")):
        if (steps_key in m) != (table_key in m):
            raise ValueError(f"metrics.safetensors: {steps_key!r} and {table_key!r} come in pairs; one is missing")
        if table_key not in m:
            continue
        table, rows = m[table_key], len(m[steps_key])
        if table.ndim != 2 or table.shape[0] != rows or table.shape[1] != len(names):
            raise ValueError(f"metrics.safetensors: {table_key!r} has shape {list(table.shape)}, but the file names "
                             f"{len(names)} {what}(s) and {rows} recorded steps")
