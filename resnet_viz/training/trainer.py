"""The instrumented trainer: the paper's recipe, with every weight layer's gradient norm recorded at every step.

The hot loop follows airbench: the (subset of the) training set lives on the training device as uint8, augmentation
and normalisation are batched tensor ops there, and per-step numbers (loss, batch error, gradient norms) are written
into small device buffers (`metric_log.DeviceMetricLog`) that are copied to the host in bulk at each flush — no
`.item()` per step. Evaluation (`evaluate`) costs one host sync.

The loop knows only training. It starts from a StartState (a new run: none, i.e. fresh weights and an empty
record; a continued run: what `resnet_viz.training.extend` read from its checkpoint — weights, BatchNorm statistics, momentum,
data order and the curves to append to) and trains in the precision its caller resolved. What it measured of its own
pace it reports in its TrainResult; teaching the time-budget planner is the caller's business (`resnet_viz.training.train_one`).
"""
from __future__ import annotations

import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..analyses.probes import branch_ratio_names, branch_ratio_probe
from ..config import RunConfig
from ..datasets.cifar10 import Cifar10Tensors, load_cifar10
from ..datasets.batches import augment_batch, normalize, stratified_subset, subset_note
from .devices import describe_device, resolve_device
from ..errors import ConfigError, ResnetVizError, RunStoreError
from .evaluation import eval_divergence, evaluate
from .schedule import StepPlan, lr_at  # noqa: F401 (lr_at: the schedule, importable from here as before)
from .metric_log import DeviceMetricLog, MetricArrays, check_recording_fits
from ..nets.models import build_model, weight_layers
from ..storage.store import RunStore
from ..storage.writer import RunWriter
from ..nets.summary import check_fits
from .loop_io import MeasuredPace, StartState, TrainResult
from .precision import autocast_for
from .checkpoint import training_state
from .threads import CpuLoad, ThreadGovernor

EVAL_SUBSET_SEED = 1234  # every run evaluates on the same images, whatever its own seed
FLUSH_SECONDS = 2.0  # also flush when this much wall time passed, so slow CPU runs still update live
SAVE_SECONDS = 10.0  # at most this long between metric writes to disk while training
PACE_WINDOW_S = 30.0  # the ETA follows the pace of about the last half minute: it notices a busier machine
BRANCH_PROBE_IMAGES = 64  # fixed test images for the branch-ratio log: ~1/12 of a training step's work


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

    seconds_per_step: float | None = None  # the recent pace, evaluations excluded
    evals_left: int = 0
    seconds_per_eval: float = 0.0

    @property
    def eta_seconds(self) -> float | None:
        """Time left: the steps left at the recent pace, plus the evaluations left at their measured cost."""
        if self.seconds_per_step is None:
            return None
        return (self.total_steps - self.step) * self.seconds_per_step + self.evals_left * self.seconds_per_eval


PrecisionChoice = str | Callable[[int, torch.device], str] | None


class Trainer:
    """Trains one run. `request_stop()` may be called from any thread; the loop honours it within one step.

    `start` and `writer`: continue a saved run in place (both come from `resnet_viz.training.extend`) instead of creating a
    new one in `store`. `precision`: "fp32" or "bf16", or a function (batch, device) -> one of them for a caller
    that resolves "auto" once the batch and device are known; None: the config's own, which must then not be
    "auto" (`resnet_viz.training.train_one.train` resolves it)."""

    def __init__(self, config: RunConfig, data: Cifar10Tensors | None = None, store: RunStore | None = None,
                 on_progress: Callable[[Progress], None] | None = None, stop_event: threading.Event | None = None,
                 save: bool = True, reserve_cores: int = 0, start: StartState | None = None,
                 writer: RunWriter | None = None, precision: PrecisionChoice = None):
        self.config = config.validate()
        self.start, self.precision_choice = start, precision
        self.data = data
        self.store = store if store is not None else (RunStore() if save and writer is None else None)
        self.on_progress = on_progress
        self.stop_event = stop_event or threading.Event()
        self.writer: RunWriter | None = writer
        self.reserve_cores = reserve_cores  # CPU cores left free, e.g. for the app's server to render pages
        # The run's state, set up by _train for its helpers _evaluate, _report and _save:
        self._run_id, self._device, self._started, self._eval_seconds = "unsaved", None, 0.0, 0.0
        self._time_offset = start.previous_seconds if start else 0.0  # the run's wall time before this session
        self._plan: StepPlan | None = None
        self._metrics: MetricArrays | None = None
        self._layer_names: list[str] = []
        self._branch_names: list[str] = []

    def request_stop(self) -> None:
        self.stop_event.set()

    # ----------------------------------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        cfg = self.config
        tc = cfg.train
        device = resolve_device(tc.device)
        check_fits(cfg.model, tc.batch_size, device)
        if self.precision_choice is None and tc.precision == "auto":
            raise ConfigError("The training loop needs a resolved precision (fp32 or bf16), not auto: train through "
                              "resnet_viz.training.train_one.train, which resolves it.")
        if self.writer is None and self.store is not None:
            self.writer = self.store.create(cfg)
        run_id = self.writer.id if self.writer else "unsaved"
        try:
            return self._train(device, run_id)
        except KeyboardInterrupt:
            self._record_end("interrupted", "Aborted from the keyboard; the metrics up to the last save are kept.")
            raise
        except BaseException as e:
            self._record_end("failed", str(e) if isinstance(e, ResnetVizError) else f"{type(e).__name__}: {e}")
            raise

    def _record_end(self, status: str, message: str) -> None:
        """Say in status.json how the run ended, if it can still be written. On a full disk it may not be: the
        files of the last save stay as they were, and a reader shows them as an interrupted run."""
        if self.writer is None:
            return
        try:
            self.writer.set_status(status, message=message)
        except OSError:  # a StorageError too: the error being raised already says what went wrong
            pass

    def _prepare_data(self, device: torch.device):
        """The training images and labels on the device, and the two fixed evaluation sets {"train", "test"}."""
        tc = self.config.train
        data = self.data if self.data is not None else load_cifar10(self.config.data_dir)
        if (note := subset_note(tc.subset, len(data.train_labels))) is not None:
            warnings.warn(note, stacklevel=3)
        train_idx = (stratified_subset(data.train_labels, tc.subset, seed=tc.seed) if tc.subset
                     else torch.arange(len(data.train_labels)))
        eval_train_idx = stratified_subset(data.train_labels[train_idx], tc.eval_images, seed=EVAL_SUBSET_SEED)
        eval_test_idx = stratified_subset(data.test_labels, tc.eval_images, seed=EVAL_SUBSET_SEED)
        train_x = data.train_images[train_idx].to(device)
        train_y = data.train_labels[train_idx].to(device)
        return train_x, train_y, {
            "train": (train_x[eval_train_idx.to(device)], train_y[eval_train_idx.to(device)]),
            "test": (data.test_images[eval_test_idx].to(device), data.test_labels[eval_test_idx].to(device)),
        }

    def _train(self, device: torch.device, run_id: str) -> TrainResult:
        cfg, tc = self.config, self.config.train
        self._run_id, self._device = run_id, device
        self._started = time.perf_counter()
        self._eval_seconds = 0.0
        governor = ThreadGovernor(self.reserve_cores, fixed=tc.threads or None) if device.type == "cpu" else None
        self._threads_used = {governor.start()} if governor else set()
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        torch.manual_seed(tc.seed)
        model = build_model(cfg.model).to(device)
        start = self.start
        if start:
            try:
                model.load_state_dict(start.weights)
            except RuntimeError as e:
                raise RunStoreError(f"The checkpoint of run {start.run_id} does not fit its model ({e}).") from e
        channels_last = device.type in ("cuda", "cpu")  # faster convs on both (oneDNN on CPU: ~15% at depth 56)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        named = weight_layers(model)
        self._layer_names = [n for n, _ in named]
        weights = [m.weight for _, m in named]

        train_x, train_y, eval_sets = self._prepare_data(device)
        plan = self._plan = StepPlan.for_run(len(train_y), tc, start=start.step if start else 0)
        self._precision = precision = self._resolved_precision(plan.batch, device)
        self._pace_marks: list[tuple[int, float]] = []  # (step, training seconds): the recent pace, for the ETA
        optimizer = torch.optim.SGD(model.parameters(), lr=tc.lr, momentum=tc.momentum,
                                    weight_decay=tc.weight_decay)
        if start:
            for name, p in model.named_parameters():
                buffer = start.momentum.get(name)
                if buffer is not None:  # empty_like keeps the parameter's memory format (channels_last)
                    optimizer.state[p]["momentum_buffer"] = torch.empty_like(p).copy_(buffer)
            generator, perm, perm_start = start.data_order(device)
        else:
            generator, perm, perm_start = torch.Generator(device=device).manual_seed(tc.seed), None, 0

        # ‖F(x)‖/‖shortcut(x)‖ per residual block over training: how much each block changes its input as it learns
        self._branch_names = branch_ratio_names(model) if tc.branch_ratio_every else []
        probe_images = eval_sets["test"][0][:BRANCH_PROBE_IMAGES]
        check_recording_fits(plan.total, len(weights), tc.grad_norm_every, tc.record_grad_norms,
                             len(self._branch_names), tc.branch_ratio_every)
        metrics = self._metrics = MetricArrays(plan.total, len(weights), tc.grad_norm_every, tc.record_grad_norms,
                                               len(self._branch_names), tc.branch_ratio_every)
        if start:
            try:
                metrics.restore(start.metrics, start.step)
            except ValueError as e:
                raise RunStoreError(f"Run {start.run_id}'s saved curves cannot be continued: {e}.") from e
        self._evals_before = len(metrics.evals["eval_step"])  # a continued run's, not timed in this session
        log = DeviceMetricLog(metrics, tc.flush_every, len(weights), device, tc.grad_norm_every,
                              tc.record_grad_norms, FLUSH_SECONDS, start=plan.start)
        last_save_time = time.perf_counter()
        status, diverged_step, message = "finished", None, None

        if self.writer is not None:
            self.writer.set_status("running", step=plan.start, total_steps=plan.total, message=None,
                                   device=describe_device(device), layer_names=len(weights), **self._compute_fields())
        model.train()
        if metrics.last_evaluation("eval_step") != plan.start:
            self._evaluate(model, eval_sets, plan.start, channels_last)
        self._loop_start = time.perf_counter() - self._started - self._eval_seconds  # training seconds before it
        self._load = CpuLoad(exclude_demo=True) if device.type == "cpu" else None  # others' load over the loop
        self._pace_marks.append((plan.start, self._loop_start))
        step = plan.start
        while step < plan.total and status == "finished":
            if perm is None or step >= perm_start + plan.steps_per_epoch:  # a new epoch: a new order
                perm, perm_start = torch.randperm(len(train_y), device=device, generator=generator), step
            for i in range(step - perm_start, plan.steps_per_epoch):
                if step >= plan.total:
                    break
                if self.stop_event.is_set():
                    status, message = "stopped", f"Stopped by request at step {step} of {plan.total}."
                    break
                lr = start.hold_lr if start and start.hold_lr is not None else lr_at(step, plan.total, tc)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                metrics.lr[step] = lr
                if self._branch_names and step % tc.branch_ratio_every == 0:
                    log.record_branch_ratios(branch_ratio_probe(model, probe_images))  # eval mode inside, restored
                idx = perm[i * plan.batch:(i + 1) * plan.batch]
                x = normalize(augment_batch(train_x[idx], generator))
                y = train_y[idx]
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with autocast_for(device, precision):
                    logits = model(x)
                    loss = F.cross_entropy(logits.float(), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                log.record_step(step, loss, (logits.detach().argmax(1) != y).float().mean(),
                                [w.grad for w in weights] if log.wants_grad_norms(step) else None)
                optimizer.step()
                step += 1
                if governor is not None:
                    self._threads_used.add(governor.maybe_adjust())

                now = time.perf_counter()
                if log.flush_due(step, now) or step == plan.total:
                    bad = log.flush(step, now)
                    if bad is not None:
                        status, diverged_step = "diverged", bad
                        message = (f"The loss became {metrics.loss[bad]} at step {bad}: training diverged. Try a "
                                   f"lower learning rate or a warm-up.")
                        break
                    self._report(step)
                if plan.evaluates_at(step):
                    self._evaluate(model, eval_sets, step, channels_last)
                    if (message := eval_divergence(metrics.evals, step)) is not None:
                        status, diverged_step = "diverged", step - 1
                        break
                    self._report(step)
                if now - last_save_time > SAVE_SECONDS:
                    self._save(step, "running")
                    last_save_time = now

        log.flush(step)
        if status == "stopped" and (not metrics.evals["eval_step"] or metrics.evals["eval_step"][-1] != step):
            self._evaluate(model, eval_sets, step, channels_last)
            if (divergence := eval_divergence(metrics.evals, step)) is not None:
                status, diverged_step, message = "diverged", max(0, step - 1), divergence
        steps_done = diverged_step + 1 if diverged_step is not None else step
        pace = None
        if status == "finished":
            pace = self._measured_pace(steps_done - plan.start, plan.batch,
                                       len(eval_sets["train"][1]) + len(eval_sets["test"][1]))
        checkpoint = None
        if status in ("finished", "stopped"):
            checkpoint = (model, *training_state(model, optimizer, generator, steps_done, perm, perm_start,
                                                 plan.steps_per_epoch))
        self._save(steps_done, status, checkpoint=checkpoint, message=message, diverged_step=diverged_step,
                   finished=time.time(), images_per_second=(steps_done - plan.start) * plan.batch
                   / max(1e-9, time.perf_counter() - self._started))
        self._report(steps_done, status)
        return TrainResult(run_id=run_id, status=status, steps=steps_done, metrics=metrics.as_dict(steps_done),
                           layer_names=self._layer_names, seconds=time.perf_counter() - self._started,
                           diverged_step=diverged_step, model=model, pace=pace)

    # ---------------------------------------------------- helpers of _train, sharing the run's state it set up ----
    def _evaluate(self, model: torch.nn.Module, eval_sets: dict, step: int, channels_last: bool) -> None:
        t0 = time.perf_counter()
        values = evaluate(model, eval_sets, channels_last=channels_last)
        self._eval_seconds += time.perf_counter() - t0
        self._metrics.add_evaluation(step, values, elapsed=self._time_offset + time.perf_counter() - self._started)

    def _resolved_precision(self, batch: int, device: torch.device) -> str:
        choice = self.precision_choice
        return (choice(batch, device) if callable(choice) else choice) or self.config.train.precision

    def _measured_pace(self, steps: int, batch: int, images_per_eval: int) -> MeasuredPace | None:
        """This session's pace: training steps and evaluations apart (for the caller to teach the planner)."""
        if steps < 1:
            return None
        training = time.perf_counter() - self._started - self._eval_seconds - self._loop_start
        n_evals = len(self._metrics.evals["eval_step"]) - self._evals_before
        return MeasuredPace(steps=steps, batch=batch, device=self._device, step_seconds=training / steps,
                            eval_image_seconds=self._eval_seconds / max(1, n_evals * images_per_eval),
                            precision=self._precision, threads=sorted(self._threads_used),
                            others_busy=self._load.others_busy(min_interval=0) if self._load is not None else None)

    def _compute_fields(self) -> dict:
        """What the run's status records of how it used the machine."""
        threads = sorted(self._threads_used)
        return {"precision": self._precision, **({"threads": threads[-1] if len(threads) == 1 else threads}
                                                 if threads else {})}

    def _pace(self, step: int, training_seconds: float) -> float | None:
        """Seconds per step over roughly the last PACE_WINDOW_S of training (evaluations excluded)."""
        marks = self._pace_marks
        if not marks or marks[-1][0] != step:
            marks.append((step, training_seconds))
        while len(marks) > 2 and marks[-1][1] - marks[1][1] >= PACE_WINDOW_S:
            marks.pop(0)
        (s0, t0), (s1, t1) = marks[0], marks[-1]
        if s1 <= s0:
            return None
        return (t1 - t0) / (s1 - s0)

    def _report(self, step: int, state: str = "running") -> None:
        if self.on_progress is None:
            return
        metrics, plan = self._metrics, self._plan
        elapsed = time.perf_counter() - self._started
        training_seconds = elapsed - self._eval_seconds
        n_evals = len(metrics.evals["eval_step"]) - self._evals_before
        recent = metrics.loss[max(0, step - self.config.train.flush_every):step]
        self.on_progress(Progress(
            run_id=self._run_id, label=self.config.model.name, step=step, total_steps=plan.total,
            epoch=step / plan.steps_per_epoch,
            loss=float(np.nanmean(recent)) if len(recent) and np.isfinite(recent).any() else float("nan"),
            lr=float(metrics.lr[max(0, step - 1)]), elapsed=elapsed,
            images_per_second=(step - plan.start) * plan.batch / max(1e-9, elapsed - self._eval_seconds), status=state,
            test_error=metrics.last_evaluation("test_error"), train_error=metrics.last_evaluation("train_error"),
            metrics=metrics.as_dict(step), layer_names=self._layer_names,
            seconds_per_step=self._pace(step, training_seconds) if step > plan.start else None, evals_left=plan.evaluations_after(step),
            seconds_per_eval=self._eval_seconds / max(1, n_evals)))

    def _save(self, step: int, state: str, checkpoint: tuple | None = None, **extra) -> None:
        if self.writer is None:
            return
        self.writer.write_metrics(self._metrics.as_dict(step), self._layer_names, self._branch_names)
        if checkpoint is not None:  # after the curves, so a checkpoint never runs ahead of them
            self.writer.write_checkpoint(*checkpoint)
        self.writer.set_status(state, step=step, total_steps=self._plan.total, device=describe_device(self._device),
                               seconds=self._time_offset + time.perf_counter() - self._started,
                               **self._compute_fields(), **extra)

