"""Which device does the work: the one picker for training (CLI, app queue, trainer), the pages that look inside
nets, and the Home page's "Device found".

torch is imported inside the functions, not at the top: a page may ask what this machine has without this module
pulling in torch on import (the Home page asks, and the first answer is cached there).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    import torch


def _mps_available() -> bool:
    import torch
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def resolve_device(name: str = "auto") -> torch.device:
    """The device a run trains on: "auto" takes CUDA if present, then Apple's MPS, then the CPU; a named GPU that is
    not here is a ConfigError with the fix."""
    import torch
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("You asked for the CUDA GPU, but PyTorch sees none here. Use --device auto or cpu.")
    if name == "mps" and not _mps_available():
        raise ConfigError("You asked for Apple's MPS GPU, but PyTorch sees none here. Use --device auto or cpu.")
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    """How a run's status names its device: "CUDA GPU (<name>)", "Apple MPS GPU" or "CPU (<n> cores)"."""
    if device.type == "cuda":
        import torch
        return f"CUDA GPU ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "Apple MPS GPU"
    return f"CPU ({os.cpu_count()} cores)"


def analysis_device() -> str:
    """Where the pages that look inside nets (Analyses, Grad-CAM, the step-0 gradients) compute: the CUDA GPU if
    there is one, else the CPU."""
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def accelerator_found() -> tuple[str, str]:
    """What the Home page shows under "Device found": ("CUDA" | "MPS" | "CPU", a detail line)."""
    import torch
    if torch.cuda.is_available():
        return "CUDA", torch.cuda.get_device_name(0)
    if _mps_available():
        return "MPS", "Apple-silicon GPU (Metal)"
    return "CPU", f"{torch.get_num_threads()} threads — fine for the small presets; deep nets train slowly"
