"""Files that are never seen half-written, and JSON that strict parsers accept.

Every write goes to a temporary file in the same directory and is renamed over the old one, so a reader (or a crash)
never sees half a file."""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

PER_STEP_KEYS = ("loss", "batch_error", "lr")
PER_EVAL_KEYS = ("train_loss", "train_error", "test_loss", "test_error", "eval_time")


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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)
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
