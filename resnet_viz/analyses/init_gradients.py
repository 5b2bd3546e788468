"""Gradient flow at initialisation: every weight layer's gradient norm of a plain net and its ResNet twin at step 0,
on one batch of real CIFAR-10 training images — what a training run records before its first update, in a second.

For a seed, `init_gradients` does exactly what `trainer.Trainer` does up to its first `optimizer.step()`:
`torch.manual_seed(seed)` then `build_model` (so the weights are the run's), a generator seeded with the seed draws
the epoch's order (`randperm`) and augments the first `batch_size` images of it (`data.augment_batch`: the paper's
crop and flip, drawn from the same generator), `data.normalize`, channels-last on the CPU, BatchNorm in training
mode, a fp32 forward pass, cross-entropy, one backward pass, and the L2 norm of each conv and linear layer's weight
gradient (`models.weight_layers`, in depth order). A run with the same seed, `precision="fp32"` and the same number
of CPU threads records the same numbers at step 0 (`tests/test_init_gradients.py` trains one step and compares).
The thread count matters: it changes the order of the floating-point sums, and a deep plain net amplifies those
last-digit differences — plain-56's step-0 norms differ by up to 13% between one and two threads (resnet-56's by
0.4%), each count giving the same numbers every time. So every pass here uses `threads` (default one) whatever the
load, and the answer never depends on how busy the machine was.

Speed (measured 2026-12-07 on the 2-core AMD EPYC (Zen 4) benchmark VM). A pass costs what a training step costs:
~0.13 GMACs per image at depth 56, ×128 images, ×3 for the backward — 0.62 s on one of its cores, so the only lever
left is the cores. Each (net, seed) is one job; the jobs run side by side in worker threads (one per usable core, as
memory allows), each with its own single intra-op thread, seed by seed, so the first seed's answer (both nets) comes
first. One thread per pass also holds up on a busy
machine, where one pass's several OpenMP threads wait for each other at every layer (plain-56 and resnet-56 on both
cores: 0.8–1.3 s this way whatever else ran; 0.7–2.5 s with two threads each, in turn; benchmarks/README.md). Results
are kept in an in-process LRU cache keyed by the architecture, the seed and a digest of the batch itself, so a
setting seen before answers at once and a shortcut change recomputes only the ResNet (the plain twin has no
shortcuts). A setting whose first seed would take longer than `MAX_SECONDS` on the machine when idle, or whose
backward pass would not fit in memory, is refused with the reason (`check_feasible`) — on a 2-core CPU that is depth
1202.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..config import MAX_SEED, ModelConfig, TrainConfig, check_whole
from ..datasets.cifar10 import Cifar10Tensors
from ..datasets.batches import augment_batch, normalize, stratified_subset
from ..errors import ConfigError
from ..lru import LRUCache
from ..nets.models import build_model, weight_layers
from ..training.threads import usable_cores

BATCH_SIZE = TrainConfig().batch_size  # the trainer's default: the batch of a run's step 0
DEFAULT_SEEDS = (0, 1, 2)  # also cli_gradients'
MAX_SEEDS = 10
MAX_SECONDS = 15.0  # a setting whose first seed (both nets) would take longer is refused, with the estimate
MEMORY_SHARE = 0.5  # of the free memory, for the passes running at once
CACHE_ENTRIES = 512  # (net, seed) results: a few KB each
# Seconds per GMAC of forward multiply-adds for a forward + backward pass on one CPU thread, before this process
# has measured its own: plain-56 (16 GMACs over 128 images) took 0.62 s alone on one core of the 2-core AMD EPYC
# (Zen 4) VM and 0.85-1.0 s with a second pass beside it (benchmarks/README.md).
PRIOR_CPU_SECONDS_PER_GMAC = 0.05
PRIOR_ACCELERATOR_SECONDS_PER_GMAC = 0.002

Progress = Callable[[int, int, str], None]  # (jobs done, jobs in all, what runs now)


@dataclass(frozen=True)
class NetGradients:
    """One net's step-0 gradient norms: norms[i, j] is layer j's ‖∇W‖₂ for seeds[i]; losses[i] that seed's batch
    loss. The fields are what `figures.init_gradient_profile` reads (no torch here)."""

    label: str
    residual: bool
    depth: int
    layer_names: tuple[str, ...]
    seeds: tuple[int, ...]
    norms: np.ndarray  # float32 [seeds, layers]
    losses: np.ndarray  # float32 [seeds]


@dataclass(frozen=True)
class InitGradients:
    plain: NetGradients
    resnet: NetGradients
    batch_size: int
    images: int  # training images the batches were drawn from
    device: str
    threads: int  # CPU threads per pass: a run trained with as many records these very numbers
    seconds: float  # computing time of this call (0 where everything came from the cache)
    computed: int  # (net, seed) passes this call ran; the rest came from the cache


# ------------------------------------------------------------------------------------------------ the batch ----
def step0_batch(data: Cifar10Tensors, seed: int, batch_size: int = BATCH_SIZE,
                subset: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The uint8 images (augmented) and labels of a run's first batch: `Trainer._train` with this seed, batch size
    and subset draws exactly these."""
    labels = data.train_labels
    train_idx = stratified_subset(labels, subset, seed=seed) if subset else None
    n = len(labels) if train_idx is None else len(train_idx)
    generator = torch.Generator().manual_seed(seed)
    batch = min(batch_size, n)  # StepPlan.for_run
    idx = torch.randperm(n, generator=generator)[:batch]
    if train_idx is not None:
        idx = train_idx[idx]  # the trainer indexes its copy of the subset: the same images (no 150 MB copy here)
    return augment_batch(data.train_images[idx], generator), labels[idx]


def _digest(images: torch.Tensor, labels: torch.Tensor) -> str:
    h = hashlib.blake2b(images.contiguous().numpy().tobytes(), digest_size=16)
    h.update(labels.contiguous().numpy().tobytes())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------- one pass ----
_RNG_LOCK = threading.Lock()  # building a model draws from torch's global generator, shared by all threads


def net_gradient_norms(cfg: ModelConfig, seed: int, images: torch.Tensor, labels: torch.Tensor,
                       device: torch.device = torch.device("cpu")) -> tuple[list[str], np.ndarray, float]:
    """(layer names, ‖∇W‖₂ per weight layer, loss) of `cfg` initialised with `seed`, for one batch of uint8 images,
    computed as the trainer's step 0 computes them. The global random state is left as it was."""
    with _RNG_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(cfg)
    model = model.to(device)
    channels_last = device.type in ("cuda", "cpu")  # as the trainer
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    named = weight_layers(model)
    x = normalize(images.to(device))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    logits = model(x)
    loss = F.cross_entropy(logits.float(), labels.to(device))
    grads = torch.autograd.grad(loss, [m.weight for _, m in named])  # only what is recorded: no BN or bias grads
    norms = torch.stack(torch._foreach_norm(list(grads))).cpu().numpy().astype(np.float32)
    return [n for n, _ in named], norms, float(loss.detach())


# ------------------------------------------------------------------------------------------------ the cache ----
_CACHE = LRUCache(CACHE_ENTRIES)
_PACE: dict[str, float] = {}  # device type -> the best seconds per GMAC of a pass on one worker measured so far


def clear_cache() -> None:
    _CACHE.clear()


def _net_key(cfg: ModelConfig) -> tuple:
    if not cfg.residual:  # the plain twin has no shortcuts: its weights do not depend on the option
        cfg = dataclasses.replace(cfg, shortcut="A")
    return tuple(sorted(dataclasses.asdict(cfg).items()))


# ------------------------------------------------------------------------------------------------- settings ----
def twins(model: ModelConfig) -> tuple[ModelConfig, ModelConfig]:
    """The plain net and its ResNet twin of a CIFAR architecture (whatever `model.residual` says)."""
    if model.family != "cifar":
        raise ConfigError("Gradients at step 0 are shown for the CIFAR nets (depth 6n+2), the ones this app trains "
                          "on CIFAR-10's 32×32 images; choose the CIFAR family.")
    plain = dataclasses.replace(model, residual=False).validate()
    return plain, dataclasses.replace(model, residual=True).validate()


def check_seeds(seeds: Sequence[int]) -> tuple[int, ...]:
    seeds = tuple(seeds)
    if not 1 <= len(seeds) <= MAX_SEEDS:
        raise ConfigError(f"Choose between 1 and {MAX_SEEDS} seeds, got {len(seeds)}.")
    for seed in seeds:
        check_whole("A seed", seed, 0, MAX_SEED)
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"The seeds must differ from one another, got {', '.join(map(str, seeds))}.")
    return seeds


@dataclass(frozen=True)
class Cost:
    gmacs: float  # forward multiply-adds of one net's pass over the batch, ×10⁹
    memory: int  # bytes for one pass (activations kept for the backward, weights, gradients)
    seconds_first_seed: float  # estimate for both nets of one seed, side by side where `workers` allows
    workers: int  # passes that may run side by side: one per usable core, as many as fit in memory


_SIZES = LRUCache(64)


def _size(plain: ModelConfig, batch: int) -> tuple[float, int]:
    """(GMACs of one forward pass over the batch, bytes for a forward and backward pass) of a net."""
    from ..nets.summary import estimate_training_memory, model_summary
    key = (_net_key(plain), batch)
    if (size := _SIZES.get(key)) is None:
        size = model_summary(plain)["total_macs"] * batch / 1e9, estimate_training_memory(plain, batch)
        _SIZES.put(key, size)
    return size


def _cost(plain: ModelConfig, batch: int, device: torch.device) -> Cost:
    """What the machine can do, not what it does this minute: a busy moment slows the passes (the view then shows
    its progress) but never refuses a setting. So the estimate uses every usable core and the best pace known."""
    from ..nets.summary import available_memory
    gmacs, memory = _size(plain, batch)
    free = available_memory(device)
    if device.type == "cpu":
        fits = max(1, int(free * MEMORY_SHARE // max(1, memory))) if free else 1
        workers = max(1, min(usable_cores(), fits))
        prior = PRIOR_CPU_SECONDS_PER_GMAC
    else:
        workers, prior = 1, PRIOR_ACCELERATOR_SECONDS_PER_GMAC
    pace = min(prior, _PACE.get(device.type, prior))
    return Cost(gmacs, memory, gmacs * pace * 2 / min(2, workers), workers)


def check_feasible(model: ModelConfig, batch_size: int = BATCH_SIZE, device: str | torch.device = "cpu") -> Cost:
    """The cost of a setting; ConfigError, with the reason, where its backward pass would not fit in memory or its
    first seed would take longer than MAX_SECONDS on this machine when it is not busy."""
    plain, resnet = twins(model)
    device = torch.device(device)
    cost = _cost(plain, batch_size, device)
    from ..nets.summary import available_memory
    free = available_memory(device)
    gib, pair, where = 2**30, f"{plain.name} and {resnet.name}", device.type.upper()
    if free is not None and cost.memory > MEMORY_SHARE * free:
        raise ConfigError(f"Refused: {pair} are too large for a quick look at their gradients here. One forward and "
                          f"backward pass over {batch_size} images keeps about {cost.memory / gib:.1f} GiB of "
                          f"activations for the backward pass, and this {where} has {free / gib:.1f} GiB free (a "
                          f"quick look uses at most half). Pick a smaller depth or width.")
    if cost.seconds_first_seed > MAX_SECONDS:
        raise ConfigError(f"Refused: {pair} are too slow for a quick look at their gradients here. Their two passes "
                          f"over {batch_size} images ({2 * cost.gmacs:,.0f} GMACs forward, about 3× that with the "
                          f"backward) would take about {cost.seconds_first_seed:.0f} s on this {where} even when "
                          f"nothing else runs, more than the {MAX_SECONDS:.0f} s a quick look may take. Pick a "
                          f"smaller depth or width.")
    return cost


# ----------------------------------------------------------------------------------------------- the passes ----
def _run_job(cfg: ModelConfig, seed: int, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
             threads: int) -> tuple[list[str], np.ndarray, float, float]:
    if device.type == "cpu":
        torch.set_num_threads(threads)  # this worker thread's own OpenMP setting; other threads keep theirs
    start = time.perf_counter()
    names, norms, loss = net_gradient_norms(cfg, seed, images, labels, device)
    return names, norms, loss, time.perf_counter() - start


def _keys(plain: ModelConfig, resnet: ModelConfig, data: Cifar10Tensors, seeds: tuple[int, ...], batch_size: int,
          subset: int | None, device: torch.device, threads: int) -> tuple[dict, dict]:
    """(the batch of each seed, the cache key of each (residual, seed) job)."""
    batches = {seed: step0_batch(data, seed, batch_size, subset) for seed in seeds}
    threads = threads if device.type == "cpu" else 0
    return batches, {(cfg.residual, seed): (_net_key(cfg), seed, _digest(*batches[seed]), device.type, threads)
                     for seed in seeds for cfg in (plain, resnet)}


def is_cached(model: ModelConfig, data: Cifar10Tensors, seeds: Sequence[int] = DEFAULT_SEEDS,
              batch_size: int = BATCH_SIZE, subset: int | None = None, device: str | torch.device = "cpu",
              threads: int = 1) -> bool:
    """Would `init_gradients` with these arguments answer from the cache, without a pass?"""
    plain, resnet = twins(model)
    _, keys = _keys(plain, resnet, data, check_seeds(seeds), batch_size, subset, torch.device(device), threads)
    return all(_CACHE.get(key) is not None for key in keys.values())


def init_gradients(model: ModelConfig, data: Cifar10Tensors, seeds: Sequence[int] = DEFAULT_SEEDS,
                   batch_size: int = BATCH_SIZE, subset: int | None = None, device: str | torch.device = "cpu",
                   threads: int = 1, on_progress: Progress | None = None) -> InitGradients:
    """Step-0 gradient norms of the plain twin and the ResNet of `model` (a CIFAR architecture) for each seed.

    Seeds are worked through in order, both nets of a seed before the next seed, so the first seed's answer comes
    first; `on_progress(done, total, message)` is called in the caller's thread whenever passes start, and at the
    end with done == total. `threads`: CPU threads per pass (the numbers of a run trained with as many threads).
    Raises ConfigError for a setting refused by `check_feasible` or bad seeds."""
    seeds = check_seeds(seeds)
    check_whole("The batch size", batch_size, 1)
    check_whole("Threads", threads, 1, 1024)
    device = torch.device(device)
    plain, resnet = twins(model)
    batches, keys = _keys(plain, resnet, data, seeds, batch_size, subset, device, threads)
    results = {job: _CACHE.get(key) for job, key in keys.items()}
    todo = [(cfg, seed) for seed in seeds for cfg in (plain, resnet) if results[(cfg.residual, seed)] is None]
    total, done = len(todo), 0
    start = time.perf_counter()
    if todo:
        cost = check_feasible(model, batch_size, device)
        # Passes side by side, even on a busy machine: independent single-threaded passes share the cores
        # gracefully, where one pass's several OpenMP threads wait for each other at every layer.
        workers = max(1, min(cost.workers // threads, total))
        pending: dict = {}
        queue = list(todo)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="resnet_viz-init-grads") as pool:
            while queue or pending:
                while queue and len(pending) < workers:
                    cfg, seed = queue.pop(0)
                    pending[pool.submit(_run_job, cfg, seed, *batches[seed], device, threads)] = (cfg, seed)
                if on_progress is not None:
                    running = " and ".join(f"{cfg.name} seed {seed}" for cfg, seed in pending.values())
                    on_progress(done, total, f"{done} of {total} passes done; now {running}: forward and backward "
                                             f"over {len(batches[seed][1])} images …")
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    cfg, seed = pending.pop(future)
                    names, norms, loss, seconds = future.result()
                    result = (tuple(names), norms, loss)
                    _CACHE.put(keys[(cfg.residual, seed)], result)
                    results[(cfg.residual, seed)] = result
                    # The best pace, not the latest: a pass slowed by a busy moment says nothing of the machine.
                    pace = seconds / max(1e-9, cost.gmacs)
                    _PACE[device.type] = min(pace, _PACE.get(device.type, pace))
                    done += 1
    if on_progress is not None:
        on_progress(total, total, "done")

    def net(cfg: ModelConfig) -> NetGradients:
        rows = [results[(cfg.residual, seed)] for seed in seeds]
        return NetGradients(cfg.name, cfg.residual, cfg.depth, rows[0][0], seeds,
                            np.stack([r[1] for r in rows]), np.array([r[2] for r in rows], np.float32))

    return InitGradients(net(plain), net(resnet), min(batch_size, len(data.train_labels)),
                         len(data.train_labels) if not subset else min(subset, len(data.train_labels)), device.type,
                         threads, time.perf_counter() - start if todo else 0.0, total)


# ------------------------------------------------------------------------------------------------ the table ----
def _ratio_text(x: float) -> str:
    if not math.isfinite(x):
        return "—"
    return f"{x:,.0f}×" if x >= 100 else f"{x:.2g}×" if x >= 0.01 else f"1/{1 / x:,.0f}"


def gradient_table(result: InitGradients) -> str:
    """The per-layer table (median over the seeds, and their min–max), then each net's first ÷ last conv ratio."""
    p, r = result.plain, result.resnet
    seeds = ", ".join(map(str, p.seeds))
    lines = [f"Gradient norms ‖∇W‖₂ at step 0 (before any update), one batch of {result.batch_size} CIFAR-10 "
             f"training images per seed, BatchNorm in training mode, fp32, on {result.device}"
             + (f" with {result.threads} thread{'s' if result.threads > 1 else ''} per pass" if result.device == "cpu"
                else "") + f"; seeds {seeds}.",
             f"{'#':>4}  {'layer':<28} {p.label + ' median':>22} {'(min–max)':>21} {r.label + ' median':>22} "
             f"{'(min–max)':>21}"]

    def cells(net: NetGradients, name: str) -> str:
        if name not in net.layer_names:
            return f"{'—':>22} {'':>21}"
        col = net.norms[:, net.layer_names.index(name)]
        return f"{np.median(col):>22.3e} {f'({col.min():.2e}–{col.max():.2e})':>21}"

    names = list(r.layer_names) + [n for n in p.layer_names if n not in r.layer_names]
    for i, name in enumerate(names, start=1):
        lines.append(f"{i:>4}  {name:<28} {cells(p, name)} {cells(r, name)}")
    lines.append("")
    for net in (p, r):
        first, last = first_and_last_conv(net.layer_names)
        ratios = net.norms[:, first] / net.norms[:, last]
        spread = (f" (seeds: {_ratio_text(float(np.nanmin(ratios)))} – {_ratio_text(float(np.nanmax(ratios)))})"
                  if len(ratios) > 1 else "")
        lines.append(f"{net.label}: first layer ÷ last conv layer ({net.layer_names[first]} ÷ "
                     f"{net.layer_names[last]}) = {_ratio_text(float(np.nanmedian(ratios)))}{spread}; loss at step 0 "
                     f"{float(np.median(net.losses)):.3g}")
    return "\n".join(lines)


def first_and_last_conv(layer_names: Sequence[str]) -> tuple[int, int]:
    """Indices of the first layer and of the last conv layer before the classifier (projection shortcuts, which sit
    beside the main path, skipped): the pair `figures.first_last_ratio` divides."""
    last = next(i for i in range(len(layer_names) - 2, -1, -1) if "shortcut" not in layer_names[i])
    return 0, last
