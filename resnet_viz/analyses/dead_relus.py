"""Per ReLU, the fraction of units that stay zero for every image: dead units narrow a plain net's only path."""
from __future__ import annotations

import torch
from torch import nn

from .common import check_images, forward_all, hooks_removed_after, prepared


def dead_relus(model: nn.Module, images: torch.Tensor, batch_size: int = 250) -> list[tuple[str, float]]:
    """Per ReLU module, in the order they run: the fraction of its units (channel × position) that output zero for
    every image. 1.0 = the layer is entirely dead on these images. Cost: one forward pass over the images."""
    check_images(images)
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

    with prepared(model), hooks_removed_after([m.register_forward_hook(hook(n)) for n, m in relus]):
        forward_all(model, images, batch_size)
    return [(name, 1.0 - float(alive[name].float().mean())) for name in order]
