"""The training forward pass's precision, as a context: used by the training loop and by the planner's timings."""
from __future__ import annotations

from contextlib import nullcontext

import torch


def autocast_for(device: torch.device, precision: str = "fp32"):
    """The training forward pass's autocast: bf16 on tensor cores (CUDA) or oneDNN's bf16 units (CPU), or none."""
    if precision == "bf16" and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()
