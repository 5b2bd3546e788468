"""Time budgets: how many steps fit in the minutes a lecturer has, on *this* machine.

A few timed training steps per model (random data, the trainer's own step: channels_last, autocast, SGD with
momentum, gradient norms) give seconds per step; an fp32 forward pass gives the cost of the evaluations. Results are
cached on disk per machine, model, batch size, thread count and precision, so only the first plan on a machine waits
for the measurement. A plan gives every run of a preset the same number of steps — the comparison is the point — and
as many as fit in the budget.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import threading
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from ..config import ModelConfig, RunConfig, TrainConfig, epochs_for_steps
from ..errors import ConfigError
from .precision import autocast_for
from .schedule import StepPlan, eval_interval
from .threads import BUSY_THRESHOLD, CpuLoad

TIMED_STEPS = 3
WARMUP_STEPS = 2  # oneDNN and cuDNN pick their kernels in the first steps; those are not timed
BF16_MIN_GAIN = 1.10  # bf16 must be at least this much faster to be used (its gradients are a little noisier)
EVAL_BATCH = 500  # the trainer's evaluation batch
# A whole run is slower than its few timed steps (data, evaluations' caches, the odd slow step): on a quiet 2-core AMD
# EPYC (Zen 4) VM, runs each in a process of their own took 1.08× (plain-56) and 1.16× (plain-20) the timed step
# (2026-12-07, benchmarks/sustained_factor.py; 1.25 had been measured for runs inside the server's interpreter, and a
# first plan then ran 15% short). Finished runs replace the timing with their own pace (record_observed), so this
# factor only shapes a machine's first plan.
CPU_SUSTAINED_FACTOR = 1.10
RUN_OVERHEAD_S = 1.5  # per run: building the model, moving the data to the device, saving the checkpoint
# The app trains each run in a process of its own (resnet_viz.execution.run_process): starting Python, importing torch and
# reading the cached images add this much per run (measured on a 2-core AMD EPYC, 2026-12-07).
PROCESS_START_S = 3.0
QUEUE_OVERHEAD_S = 2.0  # per queue: reading the cached data
SPEED_CACHE_VERSION = 2  # 2: timings x1.10 and paces of runs in their own process (1 held x1.25 and in-server paces)
BUSY_TIMING_TTL_S = 600.0  # a timing taken beside other work serves this process's plans this long, uncached
_LOCK = threading.Lock()
_BUSY_TIMINGS: dict[str, tuple[float, "Speed"]] = {}


def speed_cache_file() -> Path:
    """Beside the decoded images: RESNET_VIZ_CACHE, or ~/.cache/resnet_viz/tensors."""
    from ..datasets.cifar10 import default_cache_dir
    return default_cache_dir() / "step_times.json"


def machine_key(device: torch.device) -> str:
    """What makes one machine's timings differ from another's."""
    if device.type == "cuda":
        what = torch.cuda.get_device_name(device)
    elif device.type == "mps":
        what = f"mps {platform.machine()}"
    else:
        what = _cpu_model()
    return f"{device.type}|{what}|torch {torch.__version__}"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass(frozen=True)
class Speed:
    """Measured on this machine for one model at one batch size."""

    step_seconds: float  # one training step
    eval_image_seconds: float  # one image of fp32 evaluation (no gradients)
    precision: str  # "bf16" or "fp32": what the training step uses
    threads: int  # torch intra-op threads it was measured with (0 on a GPU)


def _model_key(model: ModelConfig) -> str:
    return hashlib.sha1(json.dumps(asdict(model), sort_keys=True).encode()).hexdigest()[:12]


def _speed_key(model_cfg: ModelConfig, batch_size: int, device: torch.device, threads: int,
               precision: str | None = None) -> str:
    """The cache key of a speed; without a precision, the prefix its two precisions share."""
    parts = [machine_key(device), _model_key(model_cfg), str(batch_size), str(threads)]
    return "|".join(parts + ([precision] if precision else []))


def _load_cache() -> dict:
    try:
        data = json.loads(speed_cache_file().read_text())
        return data if isinstance(data, dict) and data.get("version") == SPEED_CACHE_VERSION else {}
    except (OSError, ValueError):
        return {}


def _save_cache(cache: dict) -> None:
    path = speed_cache_file()
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError as e:  # a read-only home or a full disk only costs a re-measurement next time
        tmp.unlink(missing_ok=True)
        warnings.warn(f"The measured step times could not be cached in {path.parent} ({e.strerror or e}); the "
                      f"next plan measures again.", stacklevel=2)


def _remember(key: str, speed: Speed) -> None:
    cache = _load_cache()  # read again: another process may have written meanwhile
    cache["version"] = SPEED_CACHE_VERSION
    cache.setdefault("speeds", {})[key] = asdict(speed)
    _save_cache(cache)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def measure(model_cfg: ModelConfig, batch_size: int, device: torch.device, precision: str,
            sustained: bool = True) -> tuple[float, float]:
    """(seconds per training step, seconds per evaluated image), timed with the threads torch has now. `sustained`:
    scaled to the pace a CPU keeps up over a whole run (CPU_SUSTAINED_FACTOR); False gives the raw timing."""
    from ..nets.models import build_model, weight_layers

    torch.manual_seed(0)
    model = build_model(model_cfg).to(device)
    if device.type in ("cuda", "cpu"):
        model = model.to(memory_format=torch.channels_last)
    weights = [m.weight for _, m in weight_layers(model)]
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(batch_size, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, model_cfg.num_classes, (batch_size,), device=device)
    times = []
    for i in range(WARMUP_STEPS + TIMED_STEPS):
        _sync(device)
        t0 = time.perf_counter()
        with autocast_for(device, precision):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch._foreach_norm([w.grad for w in weights])
        optimizer.step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    step = sorted(times[WARMUP_STEPS:])[TIMED_STEPS // 2]  # the median: one slow step should not move the plan
    if device.type == "cpu" and sustained:
        step *= CPU_SUSTAINED_FACTOR
    model.eval()
    n = min(EVAL_BATCH, max(batch_size, 64))
    xe = torch.randn(n, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        model(xe)
        _sync(device)
        t0 = time.perf_counter()
        model(xe)
        _sync(device)
    return step, (time.perf_counter() - t0) / n


def speed_for(model_cfg: ModelConfig, batch_size: int, device: torch.device, precision: str = "auto",
              refresh: bool = False) -> Speed:
    """This machine's speed for a model, measured once and then read from the cache. With precision "auto", a CPU
    with native bf16 measures both precisions and keeps the faster; a CUDA GPU uses bf16; anything else fp32."""
    threads = torch.get_num_threads() if device.type == "cpu" else 0
    if precision == "auto":
        if device.type == "cuda":
            precision = "bf16"
        elif device.type == "cpu" and cpu_has_bf16():
            fp32 = speed_for(model_cfg, batch_size, device, "fp32", refresh)
            bf16 = speed_for(model_cfg, batch_size, device, "bf16", refresh)
            return bf16 if bf16.step_seconds * BF16_MIN_GAIN <= fp32.step_seconds else fp32
        else:
            precision = "fp32"
    if precision not in ("fp32", "bf16"):
        raise ConfigError(f"Unknown precision {precision!r}: choose auto, fp32 or bf16.")
    key = _speed_key(model_cfg, batch_size, device, threads, precision)
    with _LOCK:
        entry = _load_cache().get("speeds", {}).get(key)
        if entry and not refresh:
            return Speed(**entry)
        busy = _BUSY_TIMINGS.get(key)
        if busy and not refresh and time.monotonic() - busy[0] < BUSY_TIMING_TTL_S:
            return busy[1]
        load = CpuLoad(exclude_demo=True) if device.type == "cpu" else None
        step, eval_image = measure(model_cfg, batch_size, device, precision)
        speed = Speed(step_seconds=step, eval_image_seconds=eval_image, precision=precision, threads=threads)
        if load is None or load.others_busy(min_interval=0) <= BUSY_THRESHOLD:
            _remember(key, speed)
        else:  # taken beside other work: not this machine's speed, so not kept for later plans
            _BUSY_TIMINGS[key] = (time.monotonic(), speed)
        return speed


def record_observed(model_cfg: ModelConfig, batch_size: int, device: torch.device, speed: Speed) -> None:
    """A finished run's own pace replaces the few timed steps: it is the better measurement (hundreds of steps, the
    real data path), and it heals a measurement taken while the machine was busy."""
    with _LOCK:
        _remember(_speed_key(model_cfg, batch_size, device, speed.threads, speed.precision), speed)


def is_cached(model_cfg: ModelConfig, batch_size: int, device: torch.device) -> bool:
    """Whether a speed is known without timing anything (on disk, or timed recently beside other work)."""
    threads = torch.get_num_threads() if device.type == "cpu" else 0
    prefix = _speed_key(model_cfg, batch_size, device, threads) + "|"
    recent = [k for k, (t, _) in _BUSY_TIMINGS.items() if time.monotonic() - t < BUSY_TIMING_TTL_S]
    return any(k.startswith(prefix) for k in [*_load_cache().get("speeds", {}), *recent])


def cpu_has_bf16() -> bool:
    """Whether oneDNN can run bf16 convolutions natively here (AVX-512-BF16 or AMX); elsewhere bf16 is emulated and
    slower than fp32, so it is not even measured."""
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, model_cfg: ModelConfig, batch_size: int, device: torch.device) -> str:
    """"auto" becomes what speed_for measured (or bf16 on CUDA, fp32 on MPS); "fp32"/"bf16" stay as asked."""
    if precision != "auto":
        return precision
    return speed_for(model_cfg, batch_size, device, "auto").precision


# ---------------------------------------------------------------------------------------------------------- plans ----
@dataclass
class PlannedRun:
    config: RunConfig  # with train.max_steps set to the planned steps and train.precision resolved
    steps: int
    seconds: float  # estimated wall time of this run
    speed: Speed


@dataclass
class Plan:
    runs: list[PlannedRun]
    budget_seconds: float
    threads: int

    @property
    def steps(self) -> int:
        return min((r.steps for r in self.runs), default=0)

    @property
    def total_seconds(self) -> float:
        return QUEUE_OVERHEAD_S + sum(r.seconds for r in self.runs)


def evaluations(steps: int, train: TrainConfig) -> int:
    """The evaluations a run of `steps` steps makes: the one before its first step and those the trainer schedules."""
    return 1 + StepPlan(train.batch_size, 1, steps, eval_interval(steps, train.eval_every)).evaluations_after(0)


def run_seconds(steps: int, train: TrainConfig, model: ModelConfig, speed: Speed) -> float:
    """Estimated wall time of one run: its steps, its evaluations, its branch-ratio probes and a fixed overhead."""
    eval_images = 2 * train.eval_images * evaluations(steps, train)
    probe_images = 64 * (-(-steps // train.branch_ratio_every)) if model.residual and train.branch_ratio_every else 0
    return RUN_OVERHEAD_S + steps * speed.step_seconds + (eval_images + probe_images) * speed.eval_image_seconds


def plan_runs(configs: list[RunConfig], minutes: float | None, device: torch.device, min_steps: int = 10,
              refresh: bool = False, steps: int | None = None, run_overhead: float = 0.0) -> Plan:
    """Give every run the same number of steps: as many as fit in `minutes` of wall time in all, or exactly `steps`
    (to match runs trained before). `run_overhead`: seconds each run costs beyond RUN_OVERHEAD_S (PROCESS_START_S
    where each run starts a process). On a CPU the plan fixes the thread count it was measured with, so the runs
    train with exactly the threads the plan shows."""
    if steps is None and not (isinstance(minutes, (int, float)) and 0 < minutes <= 24 * 60):
        raise ConfigError(f"A time budget is between a few seconds and 24 hours, got {minutes!r} minutes.")
    speeds = [speed_for(c.model, c.train.batch_size, device, c.train.precision, refresh) for c in configs]

    def total(n: int) -> float:
        return QUEUE_OVERHEAD_S + sum(run_seconds(n, c.train, c.model, s) + run_overhead
                                      for c, s in zip(configs, speeds))

    budget = 60.0 * minutes if minutes else None
    if steps is None:
        lo, hi = 0, 1
        while total(hi) <= budget and hi < 10_000_000:
            lo, hi = hi, hi * 2
        while hi - lo > 1:  # the largest step count that fits: total() grows with steps
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if total(mid) <= budget else (lo, mid)
        steps = max(min_steps, lo)
    threads = torch.get_num_threads() if device.type == "cpu" else 0
    runs = []
    for c, s in zip(configs, speeds):
        train = replace(c.train, max_steps=steps, precision=s.precision, threads=threads,
                        epochs=max(c.train.epochs, epochs_for_steps(steps, c.train.batch_size)))
        runs.append(PlannedRun(replace(c, train=train), steps,
                               run_seconds(steps, c.train, c.model, s) + run_overhead, s))
    return Plan(runs, budget if budget is not None else total(steps), threads)


# ------------------------------------------------------------------------------------------ custom run estimates ----
def estimate_run(config: RunConfig, device: torch.device, train_images: int, run_overhead: float = 0.0) -> PlannedRun:
    """How long a custom run will take here, before it is queued, without timing anything large: the cached speed
    of the same net where there is one, else this machine's speed for plain-20 scaled by multiply-adds (a CPU step
    costs about its multiply-adds; a depth-2000 net is never timed just to say that it takes hours)."""
    from ..nets.summary import model_summary
    train = config.train
    n_train = min(train.subset or train_images, train_images)
    steps = StepPlan.for_run(n_train, train).total
    precision = "fp32" if train.precision == "auto" and device.type == "mps" else train.precision
    reference = ModelConfig(depth=20, residual=False)
    if is_cached(config.model, train.batch_size, device) or config.model == reference:
        speed = speed_for(config.model, train.batch_size, device, precision)
    else:
        known = speed_for(reference, train.batch_size, device, precision)
        scale = model_summary(config.model)["total_macs"] / model_summary(reference)["total_macs"]
        speed = replace(known, step_seconds=known.step_seconds * scale,
                        eval_image_seconds=known.eval_image_seconds * scale)
    return PlannedRun(config, steps, run_seconds(steps, train, config.model, speed) + run_overhead, speed)
