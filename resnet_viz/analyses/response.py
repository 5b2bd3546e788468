"""He et al. 2015, Fig. 7: the std of every conv layer's response (after BN, before the addition and the ReLU).
Residual functions are small: ResNets respond more weakly."""
from __future__ import annotations

import math

import torch
from torch import nn

from .common import check_images, forward_all, hooks_removed_after, named_blocks, prepared


def response_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(conv name, the module whose output is that conv's response after BN) in depth order."""
    layers = []
    stem = getattr(model, "stem", None)
    if stem is not None and hasattr(stem, "conv") and hasattr(stem, "bn"):
        layers.append(("stem.conv", stem.bn))
    for block_name, block in named_blocks(model):
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
    check_images(images)
    layers = response_layers(model)
    sums = {name: [0.0, 0.0, 0] for name, _ in layers}

    def hook(name):
        def record(module, inputs, output):
            v = output.detach().double()
            acc = sums[name]
            acc[0] += v.sum().item()
            acc[1] += (v * v).sum().item()
            acc[2] += v.numel()
        return record

    with prepared(model), hooks_removed_after([m.register_forward_hook(hook(n)) for n, m in layers]):
        forward_all(model, images, batch_size)
    result = []
    for name, _ in layers:
        total, squares, count = sums[name]
        mean = total / count
        result.append((name, math.sqrt(max(squares / count - mean * mean, 0.0))))
    return result
