"""‖F(x)‖ / ‖shortcut(x)‖ per residual block, measured by forward hooks and left on the device.

The hook plumbing that `branch.branch_ratios` reports from, and `branch_ratio_probe`: the cheap version a trainer
calls every few steps. The trainer imports these two names from here, which still loads the whole `analyses`
package (its __init__ gathers every analysis).
"""
from __future__ import annotations

import torch
from torch import nn

from ..nets.models import _Block
from .common import batches, hooks_removed_after, model_device, model_inputs, named_blocks, prepared, residual_blocks


def branch_end(block: _Block) -> nn.Module:
    """The last module of the residual branch F: the last BN (bn2 of a basic block, bn3 of a bottleneck)."""
    norms = [m for name, m in block.named_children() if name.startswith("bn")]
    return norms[-1]


def branch_ratio_sums(model: nn.Module, images: torch.Tensor, blocks: list[tuple[str, _Block]],
                      batch_size: int) -> torch.Tensor:
    """Sum over images of ‖F(x)‖/‖shortcut(x)‖ per block, as a float64 tensor on the model's device (no host sync).
    The model is run as it is: the caller has `prepared` it."""
    device = model_device(model)
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
        handles.append(branch_end(block).register_forward_hook(on_branch(i)))
        handles.append(block.shortcut.register_forward_hook(on_shortcut(i)))
    with hooks_removed_after(handles), torch.no_grad():
        for s in batches(len(images), batch_size):
            model(model_inputs(images[s], device))
    return sums


def branch_ratio_names(model: nn.Module) -> list[str]:
    """The block names `branch_ratio_probe` reports, in its order (empty for a plain net)."""
    return [name for name, b in named_blocks(model) if b.shortcut is not None]


def branch_ratio_probe(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The numbers of `branch_ratios`, cheaply, for a trainer to log every few steps: one no-grad eval-mode forward
    pass over `images` (pass a small fixed batch, e.g. 64 test images, uint8, ideally already on the device), and
    a float32 tensor [len(branch_ratio_names(model))] left on the model's device, so logging costs no host sync.
    Whatever mode the model was in (training, requires_grad, lesioned) is restored. Raises ConfigError on a plain
    net. Safe inside an autocast region (norms are taken in float32)."""
    blocks = residual_blocks(model, "The branch ratio probe")
    with prepared(model):
        sums = branch_ratio_sums(model, images, blocks, batch_size=max(1, len(images)))
    return (sums / len(images)).float()
