"""Why do residual nets train better? Six measurements on a trained or fresh model, plain or residual.

  * `response_std`        — He et al. 2015, Fig. 7: the std of every conv layer's response (after BN, before the
                            addition and the ReLU). Residual functions are small: ResNets respond more weakly.
  * `branch_ratios`       — ‖F(x)‖ / ‖shortcut(x)‖ per residual block: how much each block changes its input.
                            `branch_ratio_probe` is the cheap version a trainer can call every few steps.
  * `lesion_single`,      — Veit et al. 2016: delete one block, or k random blocks, at test time. A ResNet degrades
    `lesion_random`         gracefully (it behaves like an ensemble of paths); a plain net collapses.
  * `loss_landscape_1d/2d`— Li et al. 2018: the loss along filter-normalised random directions around the weights.
                            Plain deep nets are chaotic, ResNets nearly convex.
  * `gradient_shattering` — Balduzzi et al. 2017: input gradients along a short line through one image. In deep
                            plain nets they decorrelate like white noise; shortcuts keep them correlated.
  * `dead_relus`          — per ReLU, the fraction of units that stay zero for every image.

Conventions shared by every function:
  * images are uint8 [N,3,H,W] (normalised here with `data.normalize`), labels int64 [N]; both are moved to the
    model's device. Results are plain Python / numpy.
  * The model is put in eval mode (BN uses its running statistics, so results do not depend on the batch), every
    block's `lesioned` flag is cleared (the intact network is analysed; the lesion studies set flags themselves),
    and parameters stop requiring gradients. All three — each module's mode, each parameter's requires_grad and
    each block's lesioned flag — are restored afterwards, also on error; hooks are always removed. Weights changed
    by the loss landscape are copied back bit for bit.
  * On a fresh (untrained) model, BN's running statistics are still their initial 0/1, so in eval mode BN is
    (almost) the identity and a deep ResNet's activations grow block after block. To study a net "at
    initialisation" as the papers do (Balduzzi et al. use BN with batch statistics), analyse
    `calibrate_bn(model, images)` — a copy whose running statistics are measured on the images;
    `bn_never_updated(model)` tells whether a model needs it.

Cost. A depth-56 CIFAR net costs 0.126 GMACs per image (depth 20: 0.041). On 2 CPU cores one forward pass over
256 images takes ~1 s with the cores to itself — and 3–10× longer while another process (a training run) keeps
both cores busy, when `torch.set_num_threads(1)` is the faster setting. `response_std`, `branch_ratios` and
`dead_relus` make one pass over all images (`batch_size` bounds memory only); `gradient_shattering` one forward +
backward pass over `points` inputs. The lesion studies and the loss landscapes need many passes, so they evaluate
a class-balanced subset (`budget_subset`: `data.stratified_subset(labels, n, seed=0)`; never "the first n", which
may all be one class when the images come class by class): n = `max_images` if given, else as many as fit
`CPU_BUDGET_GMACS` multiply-accumulates on a CPU (`ACCELERATOR_BUDGET_GMACS` on a GPU), never fewer than
`MIN_IMAGES`. At depth 56 that is ~110 images for `lesion_single`, ~48 for `lesion_random`, 75 for the 1-D and
16 for the 2-D landscape (11×11 = 121 evaluations); at depth 20 three times as many. `images_for_budget` gives n,
`budget_subset` the indices. Pass `max_images` (and fewer `points`/`grid`/`k_values`/`draws`) to trade time for
precision.
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import normalize, stratified_subset
from .errors import ConfigError
from .models import ProjectionShortcut, ResNet, ZeroPadShortcut, _Block, model_summary

CPU_BUDGET_GMACS = 200.0  # ≈ 5–12 s per multi-pass analysis on 2 CPU cores (one thread on a busy machine)
ACCELERATOR_BUDGET_GMACS = 20_000.0  # a GPU evaluates every image a caller is likely to pass
MIN_IMAGES = 16

NOT_REMOVABLE = "changes the shape: nothing else connects its input to the next layer"

Progress = Callable[[float], None] | None


# -------------------------------------------------------------------------------------------- plumbing ----
def _device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _check_images(images: torch.Tensor, labels: torch.Tensor | None = None) -> None:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4 \
            or images.shape[1] != 3:
        shape = list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        dtype = images.dtype if isinstance(images, torch.Tensor) else ""
        raise ConfigError(f"The analyses expect uint8 images of shape [N,3,H,W]; got {dtype} {shape}.")
    if len(images) == 0:
        raise ConfigError("The analyses need at least one image.")
    if labels is not None and (labels.dim() != 1 or len(labels) != len(images)):
        raise ConfigError(f"Expected one label per image ({len(images)}), got labels of shape {list(labels.shape)}.")


def _blocks(model: nn.Module) -> list[tuple[str, _Block]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, _Block)]


def _label(model: nn.Module) -> str:
    cfg = getattr(model, "cfg", None)
    return f"this {cfg.name}" if cfg is not None else "this model"


def _residual_blocks(model: nn.Module, what: str) -> list[tuple[str, _Block]]:
    blocks = _blocks(model)
    residual = [(n, b) for n, b in blocks if b.shortcut is not None]
    if not residual:
        raise ConfigError(f"{what} needs shortcut connections, but {_label(model)} is a plain network: its blocks "
                          f"have no shortcut to compare with. Choose a residual model (or its ResNet twin).")
    return residual


def _trunk(model: nn.Module, what: str) -> ResNet:
    if not isinstance(model, ResNet):
        raise ConfigError(f"{what} works on resnet_viz ResNet models (stem, stages of blocks, classifier); got "
                          f"{type(model).__name__}.")
    return model


@contextlib.contextmanager
def _prepared(model: nn.Module) -> Iterator[None]:
    """Eval mode, intact blocks, no parameter gradients; everything restored on exit (also on error)."""
    modes = [(m, m.training) for m in model.modules()]
    grads = [(p, p.requires_grad) for p in model.parameters()]
    lesions = [(b, b.lesioned) for _, b in _blocks(model)]
    try:
        model.eval()
        for p, _ in grads:
            p.requires_grad_(False)
        for b, _ in lesions:
            b.lesioned = False
        yield
    finally:
        for m, training in modes:
            m.training = training
        for p, requires in grads:
            p.requires_grad_(requires)
        for b, lesioned in lesions:
            b.lesioned = lesioned


@contextlib.contextmanager
def _hooks(handles: list) -> Iterator[list]:
    try:
        yield handles
    finally:
        for h in handles:
            h.remove()


def _batches(n: int, batch_size: int) -> Iterable[slice]:
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}.")
    return (slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size))


def _inputs(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    return normalize(images.to(device))


def _evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> tuple[float, float]:
    device = _device(model)
    loss, correct = 0.0, 0
    with torch.no_grad():
        for s in _batches(len(images), batch_size):
            logits = model(_inputs(images[s], device)).float()
            y = labels[s].to(device)
            loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += int((logits.argmax(1) == y).sum())
    return loss / len(images), correct / len(images)


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 250
             ) -> tuple[float, float]:
    """(mean cross-entropy, accuracy in [0,1]) of the model in eval mode — the number the loss landscape reproduces
    at its origin."""
    _check_images(images, labels)
    with _prepared(model):
        return _evaluate(model, images, labels, batch_size)


def macs_per_image(model: nn.Module, image_size: int = 32) -> int:
    """Multiply-accumulates of one forward pass of one image (read from the config, no arithmetic needed)."""
    cfg = getattr(model, "cfg", None)
    if cfg is not None:
        return int(model_summary(cfg, image_size)["total_macs"])
    total = 0

    def count(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            total += output[0].numel() * module.weight[0].numel()
        elif isinstance(module, nn.Linear):
            total += module.in_features * module.out_features

    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with _prepared(model), _hooks([m.register_forward_hook(count) for m in layers]), torch.no_grad():
        model(torch.zeros(1, 3, image_size, image_size, device=_device(model)))
    return total


def images_for_budget(model: nn.Module, images: torch.Tensor, evaluations: float, max_images: int | None = None
                      ) -> int:
    """How many of `images` (the first ones) a multi-pass analysis evaluates: `max_images` if given, else as many as
    `evaluations` full forward passes can afford within the device's budget, at least MIN_IMAGES."""
    n = len(images)
    if max_images is not None:
        if max_images < 1:
            raise ConfigError(f"max_images must be at least 1, got {max_images}.")
        return min(n, int(max_images))
    budget = CPU_BUDGET_GMACS if _device(model).type == "cpu" else ACCELERATOR_BUDGET_GMACS
    per_image = max(1, macs_per_image(model, images.shape[-1])) * max(evaluations, 1e-9)
    affordable = int(budget * 1e9 // per_image)
    return min(n, max(MIN_IMAGES, affordable))


def budget_subset(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, evaluations: float,
                  max_images: int | None = None) -> torch.Tensor:
    """The indices (sorted, int64, CPU) of the images a multi-pass analysis evaluates: a class-balanced subset of
    `images_for_budget(...)` images, the same for the same labels (data.stratified_subset with seed 0)."""
    n = images_for_budget(model, images, evaluations, max_images)
    return stratified_subset(labels.cpu(), n, seed=0).cpu()


def bn_never_updated(model: nn.Module) -> bool:
    """True when the model has BN layers that have never seen a training batch (a fresh model)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    return bool(norms) and all(m.num_batches_tracked is not None and int(m.num_batches_tracked) == 0
                               for m in norms if m.track_running_stats)


def calibrate_bn(model: nn.Module, images: torch.Tensor, batch_size: int = 250) -> nn.Module:
    """A copy of the model, in eval mode, whose BN running statistics are the average batch statistics of `images`
    (train-mode forward passes without gradients; weights untouched). The original model is not modified. Use it to
    analyse a fresh model as it behaves at initialisation, when BN normalises with batch statistics."""
    import copy
    _check_images(images)
    clone = copy.deepcopy(model)
    norms = [m for m in clone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
    for _, b in _blocks(clone):
        b.lesioned = False
    clone.train()
    device = _device(clone)
    with torch.no_grad():
        for s in _batches(len(images), batch_size):
            if s.stop - s.start > 1:  # BN cannot take statistics of one image
                clone(_inputs(images[s], device))
    for m, original in zip(norms, [m for m in model.modules()
                                    if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]):
        m.momentum = original.momentum
    return clone.eval()


# ------------------------------------------------------------------------------------- 1. response std ----
def _response_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(conv name, the module whose output is that conv's response after BN) in depth order."""
    layers = []
    stem = getattr(model, "stem", None)
    if stem is not None and hasattr(stem, "conv") and hasattr(stem, "bn"):
        layers.append(("stem.conv", stem.bn))
    for block_name, block in _blocks(model):
        for child_name, child in block.named_children():
            if isinstance(child, nn.Conv2d):
                norm = getattr(block, "bn" + child_name[len("conv"):], None) if child_name.startswith("conv") else None
                if norm is not None:
                    layers.append((f"{block_name}.{child_name}", norm))
    return layers


def response_std(model: nn.Module, images: torch.Tensor, batch_size: int = 250) -> list[tuple[str, float]]:
    """He et al. 2015, Fig. 7: the standard deviation of each conv layer's response, in depth order.

    The response of a conv is the output of the BN that follows it — before the shortcut addition and before the
    ReLU (with `batchnorm=False` models, the conv's own output). Included: the stem conv ('stem.conv') and every
    conv of every block's residual branch ('stage1.block1.conv1', …; for the CIFAR nets exactly the paper's 3×3
    layers, for bottleneck blocks the 1×1 convs too); projection-shortcut convs are not. The std is the population
    std over all elements of the response (N, C, H, W together) across all images, accumulated in float64.
    Cost: one forward pass over the images."""
    _check_images(images)
    layers = _response_layers(model)
    sums = {name: [0.0, 0.0, 0] for name, _ in layers}

    def hook(name):
        def record(module, inputs, output):
            v = output.detach().double()
            acc = sums[name]
            acc[0] += v.sum().item()
            acc[1] += (v * v).sum().item()
            acc[2] += v.numel()
        return record

    device = _device(model)
    with _prepared(model), _hooks([m.register_forward_hook(hook(n)) for n, m in layers]), torch.no_grad():
        for s in _batches(len(images), batch_size):
            model(_inputs(images[s], device))
    result = []
    for name, _ in layers:
        total, squares, count = sums[name]
        mean = total / count
        result.append((name, math.sqrt(max(squares / count - mean * mean, 0.0))))
    return result


# ------------------------------------------------------------------------------------ 2. branch ratios ----
def _branch_end(block: _Block) -> nn.Module:
    """The last module of the residual branch F: the last BN (bn2 of a basic block, bn3 of a bottleneck)."""
    norms = [m for name, m in block.named_children() if name.startswith("bn")]
    return norms[-1]


def _branch_ratio_sums(model: nn.Module, images: torch.Tensor, blocks: list[tuple[str, _Block]],
                       batch_size: int) -> torch.Tensor:
    """Sum over images of ‖F(x)‖/‖shortcut(x)‖ per block, as a float64 tensor on the model's device (no host sync)."""
    device = _device(model)
    sums = torch.zeros(len(blocks), dtype=torch.float64, device=device)
    branch_norms: dict[int, torch.Tensor] = {}

    def on_branch(i):
        def record(module, inputs, output):
            branch_norms[i] = output.detach().float().flatten(1).norm(dim=1)
        return record

    def on_shortcut(i):
        def record(module, inputs, output):
            short = output.detach().float().flatten(1).norm(dim=1)
            ratio = branch_norms.pop(i) / short
            # a shortcut of exactly zero (an all-zero input) has no defined ratio; it counts as 0
            sums[i] += torch.where(short > 0, ratio, torch.zeros_like(ratio)).double().sum()
        return record

    handles = []
    for i, (_, block) in enumerate(blocks):
        handles.append(_branch_end(block).register_forward_hook(on_branch(i)))
        handles.append(block.shortcut.register_forward_hook(on_shortcut(i)))
    with _hooks(handles), torch.no_grad():
        for s in _batches(len(images), batch_size):
            model(_inputs(images[s], device))
    return sums


def branch_ratios(model: nn.Module, images: torch.Tensor, batch_size: int = 250) -> list[tuple[str, float]]:
    """Per residual block in depth order, the mean over images of ‖F(x)‖₂ / ‖shortcut(x)‖₂ (per-image L2 norms
    over C×H×W). F(x) is the branch output (after its last BN, before the addition); shortcut(x) is the identity,
    the subsampled zero-padded input (option A) or the projection's output. Near 0: the block barely changes its
    input — He et al.'s argument that residual functions are close to zero. Raises ConfigError on a plain net.
    Cost: one forward pass over the images."""
    _check_images(images)
    blocks = _residual_blocks(model, "The branch ratio ‖F(x)‖/‖x‖")
    with _prepared(model):
        sums = _branch_ratio_sums(model, images, blocks, batch_size)
    means = (sums / len(images)).cpu().tolist()
    return [(name, float(v)) for (name, _), v in zip(blocks, means)]


def branch_ratio_names(model: nn.Module) -> list[str]:
    """The block names `branch_ratio_probe` reports, in its order (empty for a plain net)."""
    return [name for name, b in _blocks(model) if b.shortcut is not None]


def branch_ratio_probe(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The numbers of `branch_ratios`, cheaply, for a trainer to log every few steps: one no-grad eval-mode forward
    pass over `images` (pass a small fixed batch, e.g. 64 test images, uint8, ideally already on the device), and
    a float32 tensor [len(branch_ratio_names(model))] left on the model's device, so logging costs no host sync.
    Whatever mode the model was in (training, requires_grad, lesioned) is restored. Raises ConfigError on a plain
    net. Safe inside an autocast region (norms are taken in float32)."""
    blocks = _residual_blocks(model, "The branch ratio probe")
    with _prepared(model):
        sums = _branch_ratio_sums(model, images, blocks, batch_size=max(1, len(images)))
    return (sums / len(images)).float()


# ---------------------------------------------------------------------------------------- 3. lesions ----
def _removability(block: _Block) -> tuple[bool, str | None]:
    if block.shortcut is not None:
        if isinstance(block.shortcut, ZeroPadShortcut):
            return True, ("downsampling block: only its shortcut path remains (option A: subsample the input and "
                          "pad the new channels with zeros)")
        if isinstance(block.shortcut, ProjectionShortcut):
            return True, "only its shortcut path remains (the 1×1 projection conv and its BN)"
        return True, None
    if block.changes_shape:
        return False, NOT_REMOVABLE
    return True, None


def _head(model: ResNet, h: torch.Tensor) -> torch.Tensor:
    return model.fc(model.flatten(model.avgpool(h)))


def _lesion_correct(model: ResNet, images: torch.Tensor, labels: torch.Tensor, lesions: list[tuple[int, ...]],
                    batch_size: int) -> tuple[int, list[int]]:
    """(correct predictions of the intact net, correct predictions with each set of block indices deleted).

    Deleting blocks changes nothing before the first deleted one, so every block's input is computed once per batch
    and each lesioned forward pass starts at its first deleted block."""
    device = _device(model)
    blocks = [b for _, b in _blocks(model)]
    base, correct = 0, [0] * len(lesions)
    with torch.no_grad():
        for s in _batches(len(images), batch_size):
            y = labels[s].to(device)
            h = model.stem(_inputs(images[s], device))
            block_inputs = []
            for block in blocks:
                block_inputs.append(h)
                h = block(h)
            base += int((_head(model, h).argmax(1) == y).sum())
            for j, deleted in enumerate(lesions):
                if not deleted:
                    correct[j] += int((_head(model, h).argmax(1) == y).sum())
                    continue
                start = min(deleted)
                for i in deleted:
                    blocks[i].lesioned = True
                try:
                    g = block_inputs[start]
                    for block in blocks[start:]:
                        g = block(g)
                finally:
                    for i in deleted:
                        blocks[i].lesioned = False
                correct[j] += int((_head(model, g).argmax(1) == y).sum())
    return base, correct


def lesion_single(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 128,
                  max_images: int | None = None) -> dict:
    """Veit et al. 2016: delete each block on its own at test time and measure the accuracy.

    Returns {"baseline": accuracy of the intact net, "images": how many images were used, "blocks": [{"block",
    "removable", "reason", "accuracy"}, …] in depth order}. Accuracies are fractions in [0,1]. A residual block is
    always removable: deleting it leaves its shortcut (for a downsampling or projection block `reason` notes that
    only the shortcut path — zero-pad or projection — remains). A plain block is removable only where its shape does
    not change; otherwise `removable` is False, `accuracy` None and `reason` says why.
    Cost: about 1 + (blocks)/2 forward passes over the `budget_subset` of the images (module docstring)."""
    _check_images(images, labels)
    model = _trunk(model, "The lesion study")
    blocks = _blocks(model)
    info = [_removability(b) for _, b in blocks]
    removable = [i for i, (ok, _) in enumerate(info) if ok]
    passes = 1 + sum((len(blocks) - i) / len(blocks) for i in removable)
    idx = budget_subset(model, images, labels, passes, max_images)
    n = len(idx)
    with _prepared(model):
        base, correct = _lesion_correct(model, images[idx], labels[idx], [(i,) for i in removable], batch_size)
    accuracy = dict(zip(removable, (c / n for c in correct)))
    return {
        "baseline": base / n,
        "images": n,
        "blocks": [{"block": name, "removable": ok, "reason": reason, "accuracy": accuracy.get(i)}
                   for i, ((name, _), (ok, reason)) in enumerate(zip(blocks, info))],
    }


def lesion_random(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                  k_values: Sequence[int] | None = None, draws: int = 5, seed: int = 0, batch_size: int = 128,
                  max_images: int | None = None) -> dict[int, list[float]]:
    """Veit et al. 2016, Fig. 5: delete k randomly chosen removable blocks at once, `draws` times for each k.

    Returns {k: [accuracy of each draw]} (fractions in [0,1]); k = 0 gives the intact net. `k_values` defaults to
    1..min(8, removable blocks). The same seed gives the same draws. A ResNet's accuracy falls smoothly with k; a plain
    net (whose removable blocks are those that keep the shape) collapses. Uses `budget_subset` of the images.
    Cost: about draws × Σₖ k/(k+1) forward passes over them."""
    _check_images(images, labels)
    model = _trunk(model, "The lesion study")
    blocks = _blocks(model)
    removable = [i for i, (_, b) in enumerate(blocks) if _removability(b)[0]]
    if k_values is None:
        k_values = range(1, min(8, len(removable)) + 1)
    k_values = [int(k) for k in k_values]
    bad = [k for k in k_values if k < 0 or k > len(removable)]
    if bad:
        raise ConfigError(f"Cannot delete {bad[0]} blocks: {_label(model)} has {len(removable)} removable blocks "
                          f"(plain blocks that change the shape cannot be removed). Choose k from 0 to "
                          f"{len(removable)}.")
    if draws < 1:
        raise ConfigError(f"draws must be at least 1, got {draws}.")
    rng = np.random.default_rng(seed)
    lesions = [tuple(sorted(int(i) for i in rng.choice(removable, size=k, replace=False))) for k in k_values
               for _ in range(draws)]
    passes = 1 + sum((len(blocks) - min(d)) / len(blocks) for d in lesions if d)
    idx = budget_subset(model, images, labels, passes, max_images)
    n = len(idx)
    with _prepared(model):
        _, correct = _lesion_correct(model, images[idx], labels[idx], lesions, batch_size)
    result: dict[int, list[float]] = {}
    for j, k in enumerate(k for k in k_values for _ in range(draws)):
        result.setdefault(k, []).append(correct[j] / n)
    return result


def lesioned_logits(model: nn.Module, images: torch.Tensor, blocks: Iterable[str] = (), batch_size: int = 250
                    ) -> np.ndarray:
    """The model's logits (float32 [N, classes]) with the named blocks deleted — to look at what a lesion does."""
    _check_images(images)
    by_name = dict(_blocks(model))
    names = list(blocks)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ConfigError(f"{unknown[0]!r} is not a block of {_label(model)}; blocks are "
                          f"{', '.join(list(by_name)[:3])} … {list(by_name)[-1] if by_name else ''}.")
    for n in names:
        ok, reason = _removability(by_name[n])
        if not ok:
            raise ConfigError(f"{n} cannot be deleted: it {reason}.")
    device = _device(model)
    with _prepared(model), torch.no_grad():
        for n in names:
            by_name[n].lesioned = True
        out = [model(_inputs(images[s], device)).float().cpu() for s in _batches(len(images), batch_size)]
    return torch.cat(out).numpy()


# ---------------------------------------------------------------------------------- 4. loss landscape ----
def random_direction(model: nn.Module, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Li et al. 2018's filter-normalised random direction: {parameter name: tensor like the parameter}.

    For every conv and linear weight, a Gaussian direction whose every output filter (a conv's out-channel slice,
    a linear layer's row) is rescaled to the L2 norm of the same filter of the weight. BN weights and biases and all
    biases get a zero direction (Li et al. "ignore" BN parameters); BN running statistics are buffers, not
    parameters, and stay as trained — the landscape is evaluated in eval mode with them. Draws come from `generator`
    (CPU or the model's device; the global RNG if None) in parameter order, so a seed fixes the direction."""
    weights = {id(m.weight) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    gen_device = generator.device if generator is not None else torch.device("cpu")
    direction = {}
    for name, p in model.named_parameters():
        w = p.detach()
        if id(p) in weights:
            d = torch.randn(tuple(w.shape), generator=generator, device=gen_device, dtype=torch.float32)
            d = d.to(w.device, torch.float64)
            w64 = w.to(torch.float64)
            scale = w64.reshape(len(w64), -1).norm(dim=1) / d.reshape(len(d), -1).norm(dim=1)
            d = d * scale.view(-1, *[1] * (d.dim() - 1))
            direction[name] = d.to(w.dtype).contiguous(memory_format=_memory_format(w))
        else:
            direction[name] = torch.zeros_like(w)
    return direction


def _memory_format(t: torch.Tensor) -> torch.memory_format:
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def _landscape(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, directions: list[dict],
               coords: list[tuple[float, ...]], batch_size: int, progress: Progress) -> list[tuple[float, float]]:
    params = {n: p for n, p in model.named_parameters()
              if any(bool(d[n].any()) for d in directions)}  # zero-direction parameters never move
    originals = {n: p.detach().clone() for n, p in params.items()}
    results = []
    try:
        for step, coeffs in enumerate(coords):
            with torch.no_grad():
                for n, p in params.items():
                    new = originals[n]
                    for c, d in zip(coeffs, directions):
                        if c != 0:
                            new = torch.add(new, d[n], alpha=c)
                    p.copy_(new)
            results.append(_evaluate(model, images, labels, batch_size))
            if progress is not None:
                progress((step + 1) / len(coords))
    finally:
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(originals[n])
    return results


def _axis(points: int, span: float, what: str) -> np.ndarray:
    if points < 1:
        raise ConfigError(f"{what} must be at least 1, got {points}.")
    if not span > 0:
        raise ConfigError(f"span must be positive, got {span}.")
    axis = np.linspace(-span, span, points) if points > 1 else np.zeros(1)
    axis[np.abs(axis) < 1e-12 * span] = 0.0  # the origin exactly, so it reproduces the model's own loss
    return axis


def loss_landscape_1d(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, points: int = 21,
                      span: float = 1.0, seed: int = 0, progress: Progress = None, batch_size: int = 250,
                      max_images: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Li et al. 2018: loss and accuracy at θ + α·d for `points` values of α in [-span, span], d =
    `random_direction(model, torch.Generator().manual_seed(seed))`. Returns (alphas, losses, accuracies), numpy.
    An odd `points` includes α = 0 exactly, where the loss is `evaluate(model, images[idx], labels[idx])` with
    idx = `budget_subset(model, images, labels, points, max_images)`, the images it uses (all of them if they fit
    the budget). Weights are copied back bit for bit afterwards, even on error (e.g. a `progress` callback that
    raises to cancel). progress(fraction) after each point."""
    _check_images(images, labels)
    alphas = _axis(points, span, "points")
    idx = budget_subset(model, images, labels, len(alphas), max_images)
    with _prepared(model):
        d = random_direction(model, torch.Generator().manual_seed(seed))
        out = _landscape(model, images[idx], labels[idx], [d], [(float(a),) for a in alphas], batch_size, progress)
    return alphas, np.array([o[0] for o in out]), np.array([o[1] for o in out])


def loss_landscape_2d(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, grid: int = 11,
                      span: float = 1.0, seed: int = 0, progress: Progress = None, batch_size: int = 250,
                      max_images: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Li et al. 2018: loss at θ + α·d₁ + β·d₂ on a grid×grid lattice over [-span, span]². d₁, d₂ are the first two
    directions drawn from torch.Generator().manual_seed(seed) (so d₁ is the 1-D landscape's direction).

    Returns (alphas, betas, losses) with losses[j, i] the loss at (alphas[i], betas[j]): rows follow β, columns α —
    the layout of contour(x=alphas, y=betas, z=losses). An odd grid has the origin exactly at the centre, equal to
    `evaluate(model, images[idx], labels[idx])[0]`, idx = `budget_subset(model, images, labels, grid**2,
    max_images)` (16 class-balanced images at depth 56 on a CPU by default). Weights are restored bit for bit.
    progress(fraction) after each point."""
    _check_images(images, labels)
    alphas = _axis(grid, span, "grid")
    betas = alphas.copy()
    idx = budget_subset(model, images, labels, len(alphas) * len(betas), max_images)
    with _prepared(model):
        g = torch.Generator().manual_seed(seed)
        d1 = random_direction(model, g)
        d2 = random_direction(model, g)
        coords = [(float(a), float(b)) for b in betas for a in alphas]
        out = _landscape(model, images[idx], labels[idx], [d1, d2], coords, batch_size, progress)
    losses = np.array([o[0] for o in out]).reshape(len(betas), len(alphas))
    return alphas, betas, losses


# ----------------------------------------------------------------------------- 5. shattered gradients ----
def _autocorrelation(signal: np.ndarray, lags: np.ndarray) -> np.ndarray:
    centred = signal - signal.mean()
    power = float(np.dot(centred, centred))
    if power == 0:  # a constant slope: correlation is undefined beyond lag 0
        return np.where(lags == 0, 1.0, np.nan)
    return np.array([np.dot(centred[: len(centred) - k], centred[k:]) / power for k in lags])


def _lagged_cosine(grads: torch.Tensor, lags: np.ndarray) -> np.ndarray:
    """Mean cosine similarity of g(t), g(t+lag) over the pairs where neither gradient is exactly zero (NaN if none)."""
    nonzero = grads.norm(dim=1) > 0
    out = []
    for k in lags:
        a, b = (grads, grads) if k == 0 else (grads[:-k], grads[k:])
        ok = nonzero if k == 0 else nonzero[:-k] & nonzero[k:]
        if not bool(ok.any()):
            out.append(math.nan)
        else:
            out.append(float(F.cosine_similarity(a[ok], b[ok], dim=1).mean()))
    return np.clip(np.array(out), -1.0, 1.0)


def gradient_shattering(model: nn.Module, image: torch.Tensor, points: int = 64, epsilon: float = 1.0,
                        seed: int = 0, max_lag: int | None = None) -> dict:
    """Balduzzi et al. 2017, "The shattered gradients problem": how correlated are input gradients at nearby inputs?

    Take one image (uint8 [3,H,W] or [1,3,H,W]); after normalisation call it x. Draw a fixed random direction d
    (Gaussian, unit L2 norm over all 3·H·W values, from `seed`) and walk the line x + t·d for `points` values of t
    evenly spaced in [-epsilon, epsilon] (epsilon is an L2 distance in normalised-input units; 1.0 moves each value
    by ~1/55 of a pixel's std). At each point take g(t) = ∇ₓ of the logit of the class the model predicts for x
    (the same class all along the line), in eval mode, in one batched forward + backward pass.

    Returns a dict of numpy arrays / floats:
      t                      — the positions on the line;
      signal                 — g(t)·d, the slope of that logit along the line: a 1-D signal to plot over t;
      pixel_signal           — g(t) at one fixed input value (channel 0, the centre pixel);
      lags, autocorrelation  — the signal's normalised autocorrelation (mean removed) at lags 0..max_lag
                               (default points // 4): white noise drops to ~0 at lag 1, a smooth signal stays near 1;
      gradient_cosine        — mean cosine similarity of whole gradients g(t), g(t+lag) at the same lags;
      neighbour_correlation  — gradient_cosine at lag 1: the mean cosine similarity of consecutive points' gradients,
                               in [-1, 1]. Balduzzi et al.: deep plain nets → low (shattered), ResNets → high.
                               Measured on whole gradients, not centred: a trained net's gradients share a large
                               common part, so expect values near 1 there; the contrast is starkest at initialisation
                               (use `calibrate_bn` on a fresh model): plain-56 ≈ 0, resnet-56 ≈ 0.97 at epsilon 1;
      zero_gradients         — how many points have an all-zero gradient (a dead net: the logit does not depend on
                               the input there); they are left out of the cosines, which are NaN if nothing is left
                               (and the autocorrelation is NaN beyond lag 0 when the signal is constant);
      predicted_class, epsilon, points.
    Cost: one forward + backward pass over `points` images."""
    if image.dim() == 3:
        image = image.unsqueeze(0)
    _check_images(image)
    if len(image) != 1:
        raise ConfigError(f"gradient_shattering takes one image, got {len(image)}.")
    if points < 3:
        raise ConfigError(f"points must be at least 3 to compare neighbouring gradients, got {points}.")
    if not epsilon > 0:
        raise ConfigError(f"epsilon must be positive, got {epsilon}.")
    device = _device(model)
    max_lag = min(points - 2, points // 4 if max_lag is None else int(max_lag))
    lags = np.arange(max(max_lag, 1) + 1)
    x0 = _inputs(image, device)[0]
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(tuple(x0.shape), generator=g).to(device)
    d = d / d.norm()
    t = torch.linspace(-epsilon, epsilon, points, device=device)
    with _prepared(model):
        with torch.no_grad():
            predicted = int(model(x0.unsqueeze(0)).argmax(1).item())
        xs = (x0.unsqueeze(0) + t.view(-1, 1, 1, 1) * d).requires_grad_(True)
        with torch.enable_grad():
            (grads,) = torch.autograd.grad(model(xs)[:, predicted].float().sum(), xs)
    flat = grads.detach().flatten(1).double()
    signal = (flat @ d.flatten().double()).cpu().numpy()
    h, w = image.shape[-2:]
    pixel = grads.detach()[:, 0, h // 2, w // 2].double().cpu().numpy()
    cosine = _lagged_cosine(flat, lags)
    return {
        "t": t.double().cpu().numpy(),
        "signal": signal,
        "pixel_signal": pixel,
        "lags": lags,
        "autocorrelation": _autocorrelation(signal, lags),
        "gradient_cosine": cosine,
        "neighbour_correlation": float(cosine[1]),
        "zero_gradients": int((flat.norm(dim=1) == 0).sum()),
        "predicted_class": predicted,
        "epsilon": float(epsilon),
        "points": int(points),
    }


# -------------------------------------------------------------------------------------- 6. dead ReLUs ----
def dead_relus(model: nn.Module, images: torch.Tensor, batch_size: int = 250) -> list[tuple[str, float]]:
    """Per ReLU module, in the order they run: the fraction of its units (channel × position) that output zero for
    every image. 1.0 = the layer is entirely dead on these images. Cost: one forward pass over the images."""
    _check_images(images)
    relus = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.ReLU)]
    alive: dict[str, torch.Tensor] = {}
    order: list[str] = []

    def hook(name):
        def record(module, inputs, output):
            fired = (output.detach() > 0).any(dim=0)
            if name in alive:
                alive[name] |= fired
            else:
                alive[name] = fired
                order.append(name)
        return record

    device = _device(model)
    with _prepared(model), _hooks([m.register_forward_hook(hook(n)) for n, m in relus]), torch.no_grad():
        for s in _batches(len(images), batch_size):
            model(_inputs(images[s], device))
    return [(name, 1.0 - float(alive[name].float().mean())) for name in order]


__all__ = ["response_std", "branch_ratios", "branch_ratio_probe", "branch_ratio_names", "lesion_single",
           "lesion_random", "lesioned_logits", "random_direction", "loss_landscape_1d", "loss_landscape_2d",
           "gradient_shattering", "dead_relus", "evaluate", "calibrate_bn", "bn_never_updated", "macs_per_image",
           "images_for_budget", "budget_subset",
           "CPU_BUDGET_GMACS", "ACCELERATOR_BUDGET_GMACS", "MIN_IMAGES", "NOT_REMOVABLE"]
