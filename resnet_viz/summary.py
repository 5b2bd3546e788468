"""A model described without building it for real: per-layer shapes, parameters and FLOPs (`model_summary`, run on
PyTorch's meta device), and whether one training step fits the device's memory (`check_fits`).
"""
from __future__ import annotations

import os

import torch
from torch import nn

from .config import ModelConfig, check_whole
from .errors import ConfigError
from .models import ProjectionShortcut, ResNet, ZeroPadShortcut, count_parameters

MAX_INPUT_SIZE = 4096  # pixels per side for a summary; ImageNet nets are built for 224


def default_input_size(cfg: ModelConfig) -> int:
    return 224 if cfg.stem == "imagenet" else 32


def _describe(module: nn.Module) -> str:
    if isinstance(module, nn.Conv2d):
        k, s = module.kernel_size[0], module.stride[0]
        return f"conv {k}×{k}" + (f"/{s}" if s > 1 else "")
    if isinstance(module, nn.Linear):
        return "fc"
    if isinstance(module, nn.BatchNorm2d):
        return "batchnorm"
    if isinstance(module, nn.ReLU):
        return "relu"
    if isinstance(module, nn.MaxPool2d):
        return f"max-pool {module.kernel_size}×{module.kernel_size}/{module.stride}"
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return "global avg-pool"
    if isinstance(module, ZeroPadShortcut):
        return "shortcut (zero-pad, option A)"
    if isinstance(module, ProjectionShortcut):
        return "shortcut (projection)"
    if isinstance(module, nn.Identity):
        return "identity"
    return type(module).__name__.lower()


def model_summary(cfg: ModelConfig, input_size: int | None = None) -> dict:
    """Per-layer name, kind, output shape, parameters and multiply-accumulates, plus totals.

    Runs the model on PyTorch's meta device, so it costs no memory and no arithmetic: a 1202-layer net summarises in
    well under a second. FLOPs are reported as 2 × MACs, the convention of `torch.utils.flop_counter`."""
    cfg.validate()
    if input_size is not None:
        check_whole("The input size (pixels per side)", input_size, 1, MAX_INPUT_SIZE)
    size = input_size or default_input_size(cfg)
    with torch.device("meta"):
        model = ResNet(cfg).eval()  # eval: batch norm on the meta device is much faster, counts are the same
        x = torch.empty(1, 3, size, size)
    rows: list[dict] = []

    def record(name: str):
        def hook(module, inputs, output):
            macs = 0
            if isinstance(module, nn.Conv2d):
                k = module.kernel_size[0] * module.kernel_size[1]
                macs = output.numel() * k * module.in_channels // module.groups
            elif isinstance(module, nn.Linear):
                macs = module.in_features * module.out_features
            rows.append({
                "name": name,
                "kind": _describe(module),
                "output_shape": tuple(output.shape[1:]),
                "params": sum(p.numel() for p in module.parameters(recurse=False)),
                "macs": int(macs),
                "flops": int(2 * macs),
                "activation_elements": int(output.numel()),
            })
        return hook

    leaves = [(n, m) for n, m in model.named_modules()
              if n and (not list(m.children()) or isinstance(m, ProjectionShortcut))]
    handles = [m.register_forward_hook(record(n)) for n, m in leaves if not isinstance(m, nn.Flatten)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    # A projection shortcut's conv/bn also appear as leaves; keep the individual layers, drop the wrapper row.
    rows = [r for r in rows if r["kind"] != "shortcut (projection)"]
    return {
        "config": cfg,
        "input_size": size,
        "layers": rows,
        "total_params": count_parameters(model),
        "total_macs": sum(r["macs"] for r in rows),
        "total_flops": sum(r["flops"] for r in rows),
        "weight_layers": sum(1 for r in rows if r["kind"].startswith(("conv", "fc"))),
    }


def available_memory(device: torch.device) -> int | None:
    """Free bytes on the device (for the CPU: available RAM), or None where there is no reliable figure."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return free
    if device.type == "cpu":
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return None
    return None  # MPS shares system memory and reports no reliable budget


def estimate_training_memory(cfg: ModelConfig, batch_size: int, input_size: int = 32) -> int:
    """Bytes for one training step: saved activations (every layer's output is kept for the backward pass, fp32) plus
    weights, gradients and momentum. Deliberately simple and a little generous."""
    summary = model_summary(cfg, input_size)
    activations = sum(r["activation_elements"] for r in summary["layers"]) * batch_size * 4
    return int(activations * 1.5 + summary["total_params"] * 4 * 4)


def check_fits(cfg: ModelConfig, batch_size: int, device: torch.device, input_size: int = 32) -> int:
    """Raise ConfigError when a training step of this model cannot fit the device's free memory."""
    need = estimate_training_memory(cfg, batch_size, input_size)
    have = available_memory(device)
    if have is not None and need > 0.9 * have:
        gib = 2**30
        raise ConfigError(
            f"{cfg.name} at batch size {batch_size} needs about {need / gib:.1f} GiB for training, but the "
            f"{device.type.upper()} has only {have / gib:.1f} GiB free. Use a smaller depth or batch size.")
    return need


def human_count(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.2f}G"
    if n >= 1e6:
        return f"{n / 1e6:.2f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}K"
    return str(n)


__all__ = ["model_summary", "default_input_size", "estimate_training_memory", "available_memory", "check_fits",
           "human_count", "MAX_INPUT_SIZE"]
