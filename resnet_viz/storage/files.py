"""Files that are never seen half-written, and JSON that strict parsers accept.

Every write goes to a temporary file in the same directory and is renamed over the old one, so a reader (or a crash)
never sees half a file. A write that fails — a full disk, a read-only folder — leaves the old file as it was and
raises StorageError with one sentence naming the folder and, where known, the room the file needed."""
from __future__ import annotations

import csv
import errno
import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..errors import StorageError
from ..readable import human_bytes

PER_STEP_KEYS = ("loss", "batch_error", "lr")
PER_EVAL_KEYS = ("train_loss", "train_error", "test_loss", "test_error", "eval_time")


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


def _atomic_write(path: Path, write, what: str | None = None, size: int | None = None) -> None:
    """Write `path` by `write(temporary path)` and a rename. `what` names the file in a failure's message ("the
    checkpoint of run X"); `size` is the bytes it needs, when known."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        write(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        cause = os_error_of(e)
        if cause is None:
            raise
        raise storage_error(cause, path.parent, what or path.name, size, kept=path.exists()) from e


def os_error_of(e: BaseException) -> OSError | None:
    """The operating system's error behind a failed write: `e` itself, or the one a SafetensorError names in its
    text (safetensors writes in Rust and reports "I/O error: No space left on device (os error 28)"). None for
    anything else, and for a StorageError, which already says what happened."""
    if isinstance(e, StorageError):
        return None
    if isinstance(e, OSError):
        return e
    if type(e).__name__ == "SafetensorError":
        found = re.search(r"(?:I/O error: )?([^:]*?) \(os error (\d+)\)", str(e))
        if found:
            return OSError(int(found.group(2)), found.group(1).strip())
    return None


def storage_error(cause: OSError, folder: Path, what: str, size: int | None = None,
                  kept: bool = False) -> StorageError:
    """One sentence for a write into `folder` that failed with `cause`: which folder, why, and how much room `what`
    needed when `size` is known."""
    reason = cause.strerror or str(cause)
    if cause.errno in DISK_FULL:
        free = _free_bytes(folder)
        room = ", ".join(part for part in (f"it needs about {human_bytes(size)}" if size else "",
                                           f"{human_bytes(free)} is free there" if free is not None else "") if part)
        message = (f"The disk holding {folder} is full: {what} could not be saved"
                   + (f" ({room})" if room else "") + ("; the copy saved before is kept" if kept else "")
                   + ". Free some space or choose a folder on another disk, then try again.")
    elif cause.errno in NOT_WRITABLE:
        message = (f"{_capital(what)} could not be saved: {folder} cannot be written to ({reason})"
                   + ("; the copy saved before is kept" if kept else "") + ".")
    else:
        message = f"{_capital(what)} could not be saved in {folder} ({reason})."
    error = StorageError(message)
    error.errno = cause.errno
    return error


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def atomic_write_text(path: Path, text: str, what: str | None = None) -> None:
    data = text.encode("utf-8")
    atomic_write_bytes(path, data, what)


def atomic_write_bytes(path: Path, data: bytes, what: str | None = None) -> None:
    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    _atomic_write(path, write, what, len(data))


def atomic_write_json(path: Path, obj, what: str | None = None) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default), what)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def strict_json(obj, **kwargs) -> str:
    """JSON that strict parsers accept: NaN and ±inf become null (Python's json would write the bare word NaN)."""
    return json.dumps(_finite_or_none(obj), allow_nan=False, default=_json_default, **kwargs)


def _finite_or_none(obj):
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind == "f":
            cells = obj.astype(object)
            cells[~np.isfinite(obj)] = None
            return cells.tolist()
        return obj.tolist()
    if isinstance(obj, np.generic):
        return _finite_or_none(obj.item())
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    return obj


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
