"""Per-step training numbers without per-step host syncs.

`DeviceMetricLog` writes each step's loss, batch error and (every few steps) per-layer gradient norms into small
buffers on the training device, plus the branch-ratio probe's rows; `flush` copies them in bulk into the host-side
`MetricArrays` and reports the first step whose loss is not finite. Only a flush waits for the device.
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import torch

from ..errors import ConfigError

EVAL_KEYS = ("train_loss", "train_error", "test_loss", "test_error")


class MetricArrays:
    """Host-side arrays for a whole run, filled at each flush and evaluation."""

    def __init__(self, total_steps: int, n_layers: int, grad_every: int, record_grads: bool,
                 n_blocks: int = 0, probe_every: int = 0):
        self.loss = np.full(total_steps, np.nan, np.float32)
        self.batch_error = np.full(total_steps, np.nan, np.float32)
        self.lr = np.zeros(total_steps, np.float32)
        n_grad = -(-total_steps // grad_every) if record_grads else 0
        self.grad_norm_step = np.arange(n_grad, dtype=np.int64) * grad_every
        self.grad_norms = np.full((n_grad, n_layers), np.nan, np.float32)
        n_probe = -(-total_steps // probe_every) if n_blocks and probe_every else 0
        self.branch_ratio_step = np.arange(n_probe, dtype=np.int64) * max(1, probe_every)
        self.branch_ratios = np.full((n_probe, n_blocks), np.nan, np.float32)
        self.evals: dict[str, list] = {k: [] for k in ("eval_step",) + EVAL_KEYS + ("eval_time",)}

    def add_evaluation(self, step: int, values: dict[str, float], elapsed: float) -> None:
        """Record one evaluation: `values` has the EVAL_KEYS; `elapsed` is the run's wall time at its end."""
        for key in EVAL_KEYS:
            self.evals[key].append(values[key])
        self.evals["eval_step"].append(step)
        self.evals["eval_time"].append(elapsed)

    def restore(self, saved: dict[str, np.ndarray], steps: int) -> None:
        """Take over the first `steps` steps of a saved run (arrays as `as_dict` wrote them), so training continues
        at step `steps`: per-step values and gradient-norm and probe rows before it, evaluations up to it.
        Raises ValueError where the saved arrays do not fit these (too short, other layers or intervals)."""
        if len(saved["loss"]) < steps:
            raise ValueError(f"the saved curves end at step {len(saved['loss'])}, before step {steps}")
        for key in ("loss", "batch_error", "lr"):
            getattr(self, key)[:steps] = saved[key][:steps]
        for step_key, rows_key in (("grad_norm_step", "grad_norms"), ("branch_ratio_step", "branch_ratios")):
            wanted = getattr(self, step_key)[:int(np.searchsorted(getattr(self, step_key), steps))]
            have = saved.get(step_key, np.zeros(0, np.int64))[:len(wanted)]
            rows = saved.get(rows_key)
            if not np.array_equal(have, wanted) or (
                    len(wanted) and (rows is None or rows.shape[1:] != getattr(self, rows_key).shape[1:])):
                raise ValueError(f"the saved {rows_key.replace('_', ' ')} do not match this run's layers or interval")
            if len(wanted):
                getattr(self, rows_key)[:len(wanted)] = rows[:len(wanted)]
        kept = np.asarray(saved["eval_step"]) <= steps
        self.evals["eval_step"] = [int(s) for s in np.asarray(saved["eval_step"])[kept]]
        for key in EVAL_KEYS + ("eval_time",):
            self.evals[key] = [float(v) for v in np.asarray(saved[key])[kept]]

    def last_evaluation(self, key: str) -> float | None:
        return self.evals[key][-1] if self.evals[key] else None

    def as_dict(self, steps_done: int) -> dict[str, np.ndarray]:
        n_grad = int(np.searchsorted(self.grad_norm_step, steps_done))
        out = {
            "step": np.arange(steps_done, dtype=np.int64),
            "loss": self.loss[:steps_done],
            "batch_error": self.batch_error[:steps_done],
            "lr": self.lr[:steps_done],
            "grad_norm_step": self.grad_norm_step[:n_grad],
            "grad_norms": self.grad_norms[:n_grad],
        }
        if len(self.branch_ratio_step):
            n_probe = int(np.searchsorted(self.branch_ratio_step, steps_done))
            out["branch_ratio_step"] = self.branch_ratio_step[:n_probe]
            out["branch_ratios"] = self.branch_ratios[:n_probe]
        out["eval_step"] = np.asarray(self.evals["eval_step"], np.int64)
        for k in EVAL_KEYS + ("eval_time",):
            out[k] = np.asarray(self.evals[k], np.float32)
        return out


class DeviceMetricLog:
    """The last few steps' numbers on the device; `flush` moves them to `host`.

    Steps [0, flushed_to) are on the host (those before `start` already, for a run that continues). A step's
    numbers go into slot `step - flushed_to`, so the caller must flush before `window` steps are pending
    (`flush_due` says when: a full window, or `flush_seconds` of wall time since the last flush, so slow runs still
    update live)."""

    def __init__(self, host: MetricArrays, window: int, n_layers: int, device: torch.device,
                 grad_every: int = 1, record_grads: bool = True, flush_seconds: float = 2.0, start: int = 0):
        self.host = host
        self.window = window
        self.grad_every = grad_every
        self.record_grads = record_grads
        self.flush_seconds = flush_seconds
        self.loss = torch.zeros(window, device=device)
        self.error = torch.zeros(window, device=device)
        self.grad_norms = torch.zeros(window, n_layers, device=device)
        self.branch_ratios: list[torch.Tensor] = []  # one probe row each
        self.flushed_to = start  # a continued run's host arrays already hold the steps before `start`
        self.probes_flushed = int(np.searchsorted(host.branch_ratio_step, start))
        self.last_flush_time = time.perf_counter()

    def wants_grad_norms(self, step: int) -> bool:
        return self.record_grads and step % self.grad_every == 0

    def record_step(self, step: int, loss: torch.Tensor, error: torch.Tensor,
                    grads: Sequence[torch.Tensor] | None = None) -> None:
        """Keep a step's loss, batch error (fraction wrong) and, when given, its weight gradients' norms."""
        slot = step - self.flushed_to
        if grads is not None:
            # One fused kernel for all layers; the norms stay on the device until the next flush.
            self.grad_norms[slot] = torch.stack(torch._foreach_norm(list(grads)))
        self.loss[slot] = loss.detach()
        self.error[slot] = error

    def record_branch_ratios(self, row: torch.Tensor) -> None:
        self.branch_ratios.append(row)

    def flush_due(self, step: int, now: float) -> bool:
        return step - self.flushed_to == self.window or now - self.last_flush_time > self.flush_seconds

    def flush(self, upto: int, now: float | None = None) -> int | None:
        """Copy steps [flushed_to, upto) and the pending probe rows to the host in bulk; return the first step whose
        loss is not finite, if any. `now` (default: the current time) starts the next flush interval."""
        self.last_flush_time = time.perf_counter() if now is None else now
        host = self.host
        if self.branch_ratios:
            rows = torch.stack(self.branch_ratios).cpu().numpy()
            host.branch_ratios[self.probes_flushed:self.probes_flushed + len(rows)] = rows
            self.probes_flushed += len(rows)
            self.branch_ratios.clear()
        start, k = self.flushed_to, upto - self.flushed_to
        if k <= 0:
            return None
        host.loss[start:upto] = self.loss[:k].cpu().numpy()
        host.batch_error[start:upto] = self.error[:k].cpu().numpy()
        if self.record_grads:
            rows = [s for s in range(start, upto) if s % self.grad_every == 0]
            if rows:
                block = self.grad_norms[:k].cpu().numpy()
                host.grad_norms[rows[0] // self.grad_every: rows[-1] // self.grad_every + 1] = \
                    block[[s - start for s in rows]]
        bad = np.flatnonzero(~np.isfinite(host.loss[start:upto]))
        self.flushed_to = upto
        return start + int(bad[0]) if len(bad) else None


MAX_RECORD_BYTES = 4 * 2**30  # host memory for the recorded metrics (also bounded by half the free memory)


def check_recording_fits(total_steps: int, n_layers: int, grad_every: int, record_grads: bool,
                         n_blocks: int = 0, probe_every: int = 0) -> int:
    """Raise ConfigError when the metric arrays of a run (allocated up front, for every step) would not fit in host
    memory: a typed `--epochs 10000 --batch-size 1` should be a sentence, not an out-of-memory kill."""
    n_grad = -(-total_steps // grad_every) if record_grads else 0
    n_probe = -(-total_steps // probe_every) if n_blocks and probe_every else 0
    need = 4 * (3 * total_steps + n_grad * n_layers + n_probe * n_blocks)
    from ..nets.summary import available_memory
    free = available_memory(torch.device("cpu"))
    limit = min(MAX_RECORD_BYTES, free // 2) if free else MAX_RECORD_BYTES
    if need > limit:
        raise ConfigError(f"Recording {total_steps:,} training steps needs {need / 2**30:.1f} GiB of memory for the "
                          f"metrics alone (the limit here is {limit / 2**30:.1f} GiB). Train fewer steps (fewer "
                          f"epochs, a larger batch, max_steps) or record gradient norms less often.")
    return need
