"""What every analysis shares: input checks, the `prepared` model context, batching, evaluation and the image budget.

Cost. A depth-56 CIFAR net costs 0.126 GMACs per image (depth 20: 0.041). On the 2-core AMD EPYC (Zen 4) VM
(2026-11-26) one forward pass over 256 images took ~1 s with the cores to itself — and 3–10× longer while another
process (a training run) kept both cores busy, when `torch.set_num_threads(1)` was the faster setting
(`resnet_viz.training.threads`). `response_std`,
`branch_ratios` and `dead_relus` make one pass over all images (`batch_size` bounds memory only);
`gradient_shattering` one forward + backward pass over `points` inputs. The lesion studies and the loss landscapes
need many passes, so they evaluate a class-balanced subset (`budget_subset`: `data.stratified_subset(labels, n,
seed=0)`; never "the first n", which may all be one class when the images come class by class): n = `max_images` if
given, else as many as fit `CPU_BUDGET_GMACS` multiply-accumulates on a CPU (`ACCELERATOR_BUDGET_GMACS` on a GPU),
never fewer than `MIN_IMAGES`. At depth 56 that is ~110 images for `lesion_single`, ~48 for `lesion_random`, 75 for
the 1-D and 16 for the 2-D landscape (11×11 = 121 evaluations); at depth 20 three times as many.
`images_for_budget` gives n, `budget_subset` the indices. Pass `max_images` (and fewer `points`/`grid`/`k_values`/
`draws`) to trade time for precision.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Callable, Iterable, Iterator

import torch
from torch import nn

from ..datasets.batches import normalize, stratified_subset
from ..errors import ConfigError
from ..training.evaluation import loss_and_error_sums
from ..nets.models import ResNet, _Block
from ..nets.summary import model_summary

# ≈ 5–12 s per multi-pass analysis on the 2-core AMD EPYC (Zen 4) VM, one thread on a busy machine (2026-11-26)
CPU_BUDGET_GMACS = 200.0
ACCELERATOR_BUDGET_GMACS = 20_000.0  # a GPU evaluates every image a caller is likely to pass
MIN_IMAGES = 16

Progress = Callable[[float], None] | None


# ------------------------------------------------------------------------------------- model and inputs ----
def model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def check_images(images: torch.Tensor, labels: torch.Tensor | None = None) -> None:
    """Raise ConfigError unless images are uint8 [N,3,H,W] with N ≥ 1 and labels (if given) one per image."""
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4 \
            or images.shape[1] != 3:
        shape = list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        dtype = images.dtype if isinstance(images, torch.Tensor) else ""
        raise ConfigError(f"The analyses expect uint8 images of shape [N,3,H,W]; got {dtype} {shape}.")
    if len(images) == 0:
        raise ConfigError("The analyses need at least one image.")
    if labels is not None and (labels.dim() != 1 or len(labels) != len(images)):
        raise ConfigError(f"Expected one label per image ({len(images)}), got labels of shape {list(labels.shape)}.")


def named_blocks(model: nn.Module) -> list[tuple[str, _Block]]:
    """(name, block) for every residual or plain block of the model, in depth order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, _Block)]


def model_label(model: nn.Module) -> str:
    """'this plain-20' — for error messages."""
    cfg = getattr(model, "cfg", None)
    return f"this {cfg.name}" if cfg is not None else "this model"


def residual_blocks(model: nn.Module, what: str) -> list[tuple[str, _Block]]:
    """The blocks with a shortcut; ConfigError naming `what` on a plain net."""
    residual = [(n, b) for n, b in named_blocks(model) if b.shortcut is not None]
    if not residual:
        raise ConfigError(f"{what} needs shortcut connections, but {model_label(model)} is a plain network: its "
                          f"blocks have no shortcut to compare with. Choose a residual model (or its ResNet twin).")
    return residual


def require_resnet(model: nn.Module, what: str) -> ResNet:
    """The model itself if it is a resnet_viz ResNet (stem, stages of blocks, classifier); else ConfigError."""
    if not isinstance(model, ResNet):
        raise ConfigError(f"{what} works on resnet_viz ResNet models (stem, stages of blocks, classifier); got "
                          f"{type(model).__name__}.")
    return model


@contextlib.contextmanager
def prepared(model: nn.Module) -> Iterator[None]:
    """Eval mode, intact blocks, no parameter gradients; everything restored on exit (also on error)."""
    modes = [(m, m.training) for m in model.modules()]
    grads = [(p, p.requires_grad) for p in model.parameters()]
    lesions = [(b, b.lesioned) for _, b in named_blocks(model)]
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
def hooks_removed_after(handles: list) -> Iterator[list]:
    """Hold hook handles for a `with` block; every one is removed on exit, also on error."""
    try:
        yield handles
    finally:
        for h in handles:
            h.remove()


def batches(n: int, batch_size: int) -> Iterable[slice]:
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}.")
    return (slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size))


def model_inputs(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 images → the normalised float input the nets were trained on, on `device`."""
    return normalize(images.to(device))


def forward_all(model: nn.Module, images: torch.Tensor, batch_size: int) -> None:
    """One no-grad forward pass over the images in batches, for the hooks that record what passes through."""
    device = model_device(model)
    with torch.no_grad():
        for s in batches(len(images), batch_size):
            model(model_inputs(images[s], device))


# ------------------------------------------------------------------------------------------ evaluation ----
def loss_and_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int
                      ) -> tuple[float, float]:
    """`evaluate` of the model as it is: no input checks, no mode changes (the caller has `prepared` it). The sums
    are the trainer's (`evaluation.loss_and_error_sums`); the accuracy is counted, so it equals correct / n exactly."""
    loss_sum, wrong = loss_and_error_sums(model, images, labels, batch_size).tolist()
    return loss_sum / len(images), (len(images) - int(wrong)) / len(images)


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 250
             ) -> tuple[float, float]:
    """(mean cross-entropy, accuracy in [0,1]) of the model in eval mode — the number the loss landscape reproduces
    at its origin."""
    check_images(images, labels)
    with prepared(model):
        return loss_and_accuracy(model, images, labels, batch_size)


# ---------------------------------------------------------------------------------------------- budget ----
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
    with prepared(model), hooks_removed_after([m.register_forward_hook(count) for m in layers]), torch.no_grad():
        model(torch.zeros(1, 3, image_size, image_size, device=model_device(model)))
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
    budget = CPU_BUDGET_GMACS if model_device(model).type == "cpu" else ACCELERATOR_BUDGET_GMACS
    per_image = max(1, macs_per_image(model, images.shape[-1])) * max(evaluations, 1e-9)
    affordable = int(budget * 1e9 // per_image)
    return min(n, max(MIN_IMAGES, affordable))


def budget_subset(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, evaluations: float,
                  max_images: int | None = None) -> torch.Tensor:
    """The indices (sorted, int64, CPU) of the images a multi-pass analysis evaluates: a class-balanced subset of
    `images_for_budget(...)` images, the same for the same labels (data.stratified_subset with seed 0)."""
    n = images_for_budget(model, images, evaluations, max_images)
    return stratified_subset(labels.cpu(), n, seed=0).cpu()


# ------------------------------------------------------------------------------------------ BatchNorm ----
def _tracking_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def bn_never_updated(model: nn.Module) -> bool:
    """True when the model has BN layers that have never seen a training batch (a fresh model)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    return bool(norms) and all(m.num_batches_tracked is not None and int(m.num_batches_tracked) == 0
                               for m in norms if m.track_running_stats)


def calibrate_bn(model: nn.Module, images: torch.Tensor, batch_size: int = 250) -> nn.Module:
    """A copy of the model, in eval mode, whose BN running statistics are the average batch statistics of `images`
    (train-mode forward passes without gradients; weights untouched). The original model is not modified. Use it to
    analyse a fresh model as it behaves at initialisation, when BN normalises with batch statistics."""
    check_images(images)
    clone = copy.deepcopy(model)
    norms = _tracking_norms(clone)
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
    for _, b in named_blocks(clone):
        b.lesioned = False
    clone.train()
    device = model_device(clone)
    with torch.no_grad():
        for s in batches(len(images), batch_size):
            if s.stop - s.start > 1:  # BN cannot take statistics of one image
                clone(model_inputs(images[s], device))
    for m, original in zip(norms, _tracking_norms(model)):
        m.momentum = original.momentum
    return clone.eval()
