"""The instrumented trainer: the paper's recipe, with every weight layer's gradient norm recorded at every step.

The hot loop follows airbench: the (subset of the) training set lives on the training device as uint8, augmentation
and normalisation are batched tensor ops there, and per-step numbers (loss, batch error, gradient norms) are written
into small device buffers that are copied to the host in bulk at each flush — no `.item()` per step.
"""
from __future__ import annotations

import math
import os
from contextlib import nullcontext
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .analysis import branch_ratio_names, branch_ratio_probe
from .config import RunConfig
from .data import Cifar10Tensors, augment_batch, load_cifar10, normalize, stratified_subset
from .errors import ConfigError
from .models import build_model, check_fits, weight_layers
from .store import RunStore, RunWriter

EVAL_SUBSET_SEED = 1234  # every run evaluates on the same images, whatever its own seed
FLUSH_SECONDS = 2.0  # also flush when this much wall time passed, so slow CPU runs still update live
SAVE_SECONDS = 10.0  # at most this long between metric writes to disk while training
BRANCH_PROBE_IMAGES = 64  # fixed test images for the branch-ratio log: ~1/12 of a training step's work


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("You asked for the CUDA GPU, but PyTorch sees none here. Use --device auto or cpu.")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("You asked for Apple's MPS GPU, but PyTorch sees none here. Use --device auto or cpu.")
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"CUDA GPU ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "Apple MPS GPU"
    return f"CPU ({os.cpu_count()} cores)"


def lr_at(step: int, total: int, cfg) -> float:
    """Learning rate for a step. 'step' is the paper's schedule scaled to the run: /10 at 50% and at 75% (32k and
    48k of 64k iterations). Warm-up runs at lr/10 first, as the paper does for ResNet-110."""
    base = cfg.lr
    if step < cfg.warmup_steps:
        return base / 10
    if cfg.schedule == "constant":
        return base
    if cfg.schedule == "step":
        return base * (1.0 if step < 0.5 * total else 0.1 if step < 0.75 * total else 0.01)
    start = min(cfg.warmup_steps, total - 1)
    progress = (step - start) / max(1, total - start)
    if cfg.schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * progress))
    # one-cycle: linear rise from base/25 over the first quarter, then a cosine fall to ~0 (suits brief runs)
    if progress < 0.25:
        return base * (1 / 25 + (1 - 1 / 25) * progress / 0.25)
    return base * 0.5 * (1 + math.cos(math.pi * (progress - 0.25) / 0.75))


@dataclass
class Progress:
    run_id: str
    label: str
    step: int
    total_steps: int
    epoch: float
    loss: float  # mean over the steps since the previous report
    lr: float
    elapsed: float
    images_per_second: float
    status: str = "running"
    test_error: float | None = None
    train_error: float | None = None
    metrics: dict | None = field(default=None, repr=False)  # views of the host arrays so far, for live charts
    layer_names: list[str] | None = field(default=None, repr=False)

    @property
    def fraction(self) -> float:
        return self.step / max(1, self.total_steps)

    @property
    def eta_seconds(self) -> float | None:
        if self.step == 0:
            return None
        return self.elapsed / self.step * (self.total_steps - self.step)


@dataclass
class TrainResult:
    run_id: str
    status: str
    steps: int
    metrics: dict[str, np.ndarray]
    layer_names: list[str]
    seconds: float
    diverged_step: int | None = None
    model: torch.nn.Module | None = field(default=None, repr=False)


class _Metrics:
    """Host-side arrays, filled from device buffers at each flush."""

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
        self.evals: dict[str, list] = {k: [] for k in
                                       ("eval_step", "train_loss", "train_error", "test_loss", "test_error",
                                        "eval_time")}

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
        for k in ("train_loss", "train_error", "test_loss", "test_error", "eval_time"):
            out[k] = np.asarray(self.evals[k], np.float32)
        return out


class Trainer:
    """Trains one run. `request_stop()` may be called from any thread; the loop honours it within one step."""

    def __init__(self, config: RunConfig, data: Cifar10Tensors | None = None, store: RunStore | None = None,
                 on_progress: Callable[[Progress], None] | None = None, stop_event: threading.Event | None = None,
                 save: bool = True):
        self.config = config.validate()
        self.data = data
        self.store = store if store is not None else (RunStore() if save else None)
        self.on_progress = on_progress
        self.stop_event = stop_event or threading.Event()
        self.writer: RunWriter | None = None

    def request_stop(self) -> None:
        self.stop_event.set()

    # ----------------------------------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        cfg = self.config
        tc = cfg.train
        device = resolve_device(tc.device)
        check_fits(cfg.model, tc.batch_size, device)
        if self.store is not None:
            self.writer = self.store.create(cfg)
        run_id = self.writer.id if self.writer else "unsaved"
        try:
            return self._train(device, run_id)
        except KeyboardInterrupt:
            if self.writer is not None:
                self.writer.set_status("interrupted", message="Aborted from the keyboard; the metrics up to the "
                                                              "last save are kept.")
            raise
        except BaseException as e:
            if self.writer is not None:
                self.writer.set_status("failed", message=f"{type(e).__name__}: {e}")
            raise

    def _prepare_data(self, device: torch.device):
        tc = self.config.train
        data = self.data if self.data is not None else load_cifar10(self.config.data_dir)
        train_idx = (stratified_subset(data.train_labels, tc.subset, seed=tc.seed) if tc.subset
                     else torch.arange(len(data.train_labels)))
        eval_train_idx = stratified_subset(data.train_labels[train_idx], tc.eval_images, seed=EVAL_SUBSET_SEED)
        eval_test_idx = stratified_subset(data.test_labels, tc.eval_images, seed=EVAL_SUBSET_SEED)
        train_x = data.train_images[train_idx].to(device)
        train_y = data.train_labels[train_idx].to(device)
        return (train_x, train_y,
                (train_x[eval_train_idx.to(device)], train_y[eval_train_idx.to(device)]),
                (data.test_images[eval_test_idx].to(device), data.test_labels[eval_test_idx].to(device)))

    def _train(self, device: torch.device, run_id: str) -> TrainResult:
        cfg, tc = self.config, self.config.train
        started = time.perf_counter()
        if device.type == "cpu":
            torch.set_num_threads(os.cpu_count() or 1)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        torch.manual_seed(tc.seed)
        model = build_model(cfg.model).to(device)
        channels_last = device.type in ("cuda", "cpu")  # faster convs on both (oneDNN on CPU: ~15% at depth 56)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        named = weight_layers(model)
        names = [n for n, _ in named]
        weights = [m.weight for _, m in named]

        train_x, train_y, eval_train, eval_test = self._prepare_data(device)
        n_train = len(train_y)
        batch = min(tc.batch_size, n_train)
        steps_per_epoch = max(1, n_train // batch)  # drop the ragged last batch: BN sees equal batches
        total = max(1, round(tc.epochs * steps_per_epoch))
        if tc.max_steps:
            total = min(total, tc.max_steps)
        eval_every = tc.eval_every or max(1, total // 12)

        optimizer = torch.optim.SGD(model.parameters(), lr=tc.lr, momentum=tc.momentum,
                                    weight_decay=tc.weight_decay)
        generator = torch.Generator(device=device).manual_seed(tc.seed)
        def autocast():  # bf16 on CUDA (Hopper/Ampere tensor cores); fp32 elsewhere
            return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()

        # ‖F(x)‖/‖shortcut(x)‖ per residual block over training: how much each block changes its input as it learns
        branch_names = branch_ratio_names(model) if tc.branch_ratio_every else []
        probe_images = eval_test[0][:BRANCH_PROBE_IMAGES]
        probe_buf: list[torch.Tensor] = []  # device tensors, copied to the host at each flush
        probe_flushed = 0
        host = _Metrics(total, len(names), tc.grad_norm_every, tc.record_grad_norms, len(branch_names),
                        tc.branch_ratio_every)
        window = tc.flush_every
        loss_buf = torch.zeros(window, device=device)
        err_buf = torch.zeros(window, device=device)
        grad_buf = torch.zeros(window, len(names), device=device)
        flushed_to = 0  # steps [0, flushed_to) are on the host
        last_flush_time = last_save_time = time.perf_counter()
        status, diverged_step, message = "finished", None, None
        eval_seconds = 0.0

        def flush(upto: int) -> int | None:
            """Copy steps [flushed_to, upto) to the host in bulk; return the first non-finite step, if any."""
            nonlocal flushed_to, probe_flushed
            if probe_buf:
                rows = torch.stack(probe_buf).cpu().numpy()
                host.branch_ratios[probe_flushed:probe_flushed + len(rows)] = rows
                probe_flushed += len(rows)
                probe_buf.clear()
            k = upto - flushed_to
            if k <= 0:
                return None
            host.loss[flushed_to:upto] = loss_buf[:k].cpu().numpy()
            host.batch_error[flushed_to:upto] = err_buf[:k].cpu().numpy()
            if tc.record_grad_norms:
                rows = [s for s in range(flushed_to, upto) if s % tc.grad_norm_every == 0]
                if rows:
                    block = grad_buf[: k].cpu().numpy()
                    host.grad_norms[rows[0] // tc.grad_norm_every: rows[-1] // tc.grad_norm_every + 1] = \
                        block[[s - flushed_to for s in rows]]
            bad = np.flatnonzero(~np.isfinite(host.loss[flushed_to:upto]))
            first_bad = flushed_to + int(bad[0]) if len(bad) else None
            flushed_to = upto
            return first_bad

        def evaluate(step: int) -> None:
            nonlocal eval_seconds
            t0 = time.perf_counter()
            model.eval()
            results = []
            with torch.no_grad(), autocast():
                for x_all, y_all in (eval_train, eval_test):
                    loss_sum = torch.zeros((), device=device)
                    wrong = torch.zeros((), device=device)
                    for i in range(0, len(y_all), 500):
                        x = normalize(x_all[i:i + 500])
                        if channels_last:
                            x = x.contiguous(memory_format=torch.channels_last)
                        logits = model(x).float()
                        loss_sum += F.cross_entropy(logits, y_all[i:i + 500], reduction="sum")
                        wrong += (logits.argmax(1) != y_all[i:i + 500]).sum()
                    results.append(torch.stack([loss_sum, wrong]) / len(y_all))
            values = torch.cat(results).cpu().tolist()  # one host sync per evaluation
            model.train()
            eval_seconds += time.perf_counter() - t0
            for key, value in zip(("train_loss", "train_error", "test_loss", "test_error"), values):
                host.evals[key].append(value)
            host.evals["eval_step"].append(step)
            host.evals["eval_time"].append(time.perf_counter() - started)

        def report(step: int, state: str = "running") -> None:
            elapsed = time.perf_counter() - started
            recent = host.loss[max(0, step - window):step]
            progress = Progress(
                run_id=run_id, label=cfg.model.name, step=step, total_steps=total, epoch=step / steps_per_epoch,
                loss=float(np.nanmean(recent)) if len(recent) and np.isfinite(recent).any() else float("nan"),
                lr=float(host.lr[max(0, step - 1)]), elapsed=elapsed,
                images_per_second=step * batch / max(1e-9, elapsed - eval_seconds), status=state,
                test_error=host.evals["test_error"][-1] if host.evals["test_error"] else None,
                train_error=host.evals["train_error"][-1] if host.evals["train_error"] else None,
                metrics=host.as_dict(step), layer_names=names)
            if self.on_progress is not None:
                self.on_progress(progress)

        def save(step: int, state: str, **extra) -> None:
            if self.writer is None:
                return
            self.writer.write_metrics(host.as_dict(step), names, branch_names)
            self.writer.set_status(state, step=step, total_steps=total, device=describe_device(device),
                                   seconds=time.perf_counter() - started, **extra)

        if self.writer is not None:
            self.writer.set_status("running", step=0, total_steps=total, device=describe_device(device),
                                   layer_names=len(names))
        model.train()
        evaluate(0)
        step = 0
        while step < total:
            perm = torch.randperm(n_train, device=device, generator=generator)
            for i in range(steps_per_epoch):
                if step >= total:
                    break
                if self.stop_event.is_set():
                    status, message = "stopped", f"Stopped by request at step {step} of {total}."
                    break
                lr = lr_at(step, total, tc)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                host.lr[step] = lr
                if branch_names and step % tc.branch_ratio_every == 0:
                    probe_buf.append(branch_ratio_probe(model, probe_images))  # eval mode inside, restored after
                idx = perm[i * batch:(i + 1) * batch]
                x = normalize(augment_batch(train_x[idx], generator))
                y = train_y[idx]
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with autocast():
                    logits = model(x)
                    loss = F.cross_entropy(logits.float(), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                slot = step - flushed_to
                if tc.record_grad_norms and step % tc.grad_norm_every == 0:
                    # One fused kernel for all layers; the norms stay on the device until the next flush.
                    grad_buf[slot] = torch.stack(torch._foreach_norm([w.grad for w in weights]))
                loss_buf[slot] = loss.detach()
                err_buf[slot] = (logits.detach().argmax(1) != y).float().mean()
                optimizer.step()
                step += 1

                now = time.perf_counter()
                if step - flushed_to == window or now - last_flush_time > FLUSH_SECONDS or step == total:
                    bad = flush(step)
                    last_flush_time = now
                    if bad is not None:
                        status, diverged_step = "diverged", bad
                        message = (f"The loss became {host.loss[bad]} at step {bad}: training diverged. Try a "
                                   f"lower learning rate or a warm-up.")
                        break
                    report(step)
                if step % eval_every == 0 or step == total:
                    evaluate(step)
                    report(step)
                if now - last_save_time > SAVE_SECONDS:
                    save(step, "running")
                    last_save_time = now
            if status != "finished":
                break

        flush(step)
        if status == "stopped" and (not host.evals["eval_step"] or host.evals["eval_step"][-1] != step):
            evaluate(step)
        steps_done = diverged_step + 1 if diverged_step is not None else step
        if self.writer is not None and status in ("finished", "stopped"):
            self.writer.write_checkpoint(model)
        save(steps_done, status, message=message, diverged_step=diverged_step,
             finished=time.time(), images_per_second=steps_done * batch / max(1e-9, time.perf_counter() - started))
        report(steps_done, status)
        return TrainResult(run_id=run_id, status=status, steps=steps_done, metrics=host.as_dict(steps_done),
                           layer_names=names, seconds=time.perf_counter() - started, diverged_step=diverged_step,
                           model=model)


def train(config: RunConfig, **kwargs) -> TrainResult:
    return Trainer(config, **kwargs).run()
