"""Li et al. 2018: the loss along filter-normalised random directions around the weights. Plain deep nets are
chaotic, ResNets nearly convex."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from .common import Progress, budget_subset, check_images, loss_and_accuracy, prepared


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
            results.append(loss_and_accuracy(model, images, labels, batch_size))
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
    check_images(images, labels)
    alphas = _axis(points, span, "points")
    idx = budget_subset(model, images, labels, len(alphas), max_images)
    with prepared(model):
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
    check_images(images, labels)
    alphas = _axis(grid, span, "grid")
    betas = alphas.copy()
    idx = budget_subset(model, images, labels, len(alphas) * len(betas), max_images)
    with prepared(model):
        g = torch.Generator().manual_seed(seed)
        d1 = random_direction(model, g)
        d2 = random_direction(model, g)
        coords = [(float(a), float(b)) for b in betas for a in alphas]
        out = _landscape(model, images[idx], labels[idx], [d1, d2], coords, batch_size, progress)
    losses = np.array([o[0] for o in out]).reshape(len(betas), len(alphas))
    return alphas, betas, losses
