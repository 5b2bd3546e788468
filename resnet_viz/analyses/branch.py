"""‖F(x)‖ / ‖shortcut(x)‖ per residual block: how much each block changes its input (He et al.'s argument that
residual functions are close to zero). `probes.branch_ratio_probe` is the cheap version a trainer logs."""
from __future__ import annotations

import torch
from torch import nn

from .common import check_images, prepared, residual_blocks
from .probes import branch_ratio_sums


def branch_ratios(model: nn.Module, images: torch.Tensor, batch_size: int = 250) -> list[tuple[str, float]]:
    """Per residual block in depth order, the mean over images of ‖F(x)‖₂ / ‖shortcut(x)‖₂ (per-image L2 norms
    over C×H×W). F(x) is the branch output (after its last BN, before the addition); shortcut(x) is the identity,
    the subsampled zero-padded input (option A) or the projection's output. Near 0: the block barely changes its
    input — He et al.'s argument that residual functions are close to zero. Raises ConfigError on a plain net.
    Cost: one forward pass over the images."""
    check_images(images)
    blocks = residual_blocks(model, "The branch ratio ‖F(x)‖/‖x‖")
    with prepared(model):
        sums = branch_ratio_sums(model, images, blocks, batch_size)
    means = (sums / len(images)).cpu().tolist()
    return [(name, float(v)) for (name, _), v in zip(blocks, means)]
