"""A model described without building it for real: per-layer shapes, parameters and FLOPs (`model_summary`: the
model built on PyTorch's meta device, its shapes worked out layer by layer), and whether one training step fits the
device's memory (`check_fits`).
"""
from __future__ import annotations

import math
import os

import torch
from torch import nn

from ..config import ModelConfig, check_whole
from ..errors import ConfigError
from .models import ProjectionShortcut, ResNet, ZeroPadShortcut, _Block, count_parameters

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


def _conv_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _leaf_output_shape(module: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    """What one layer makes of an input of `shape` (C, H, W), worked out from its settings instead of running it."""
    if isinstance(module, nn.Conv2d):
        _, h, w = shape
        k, s, p, d = module.kernel_size, module.stride, module.padding, module.dilation
        return (module.out_channels, _conv_size(h, k[0], s[0], p[0], d[0]), _conv_size(w, k[1], s[1], p[1], d[1]))
    if isinstance(module, nn.MaxPool2d):
        c, h, w = shape
        k, s, p = module.kernel_size, module.stride, module.padding
        return (c, _conv_size(h, k, s, p), _conv_size(w, k, s, p))
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return (shape[0], 1, 1)
    if isinstance(module, nn.Flatten):
        return (math.prod(shape),)
    if isinstance(module, nn.Linear):
        return (module.out_features,)
    if isinstance(module, ZeroPadShortcut):
        c, h, w = shape
        return (c + module.extra_channels, -(-h // module.stride), -(-w // module.stride))
    if isinstance(module, (nn.BatchNorm2d, nn.ReLU, nn.Identity)):
        return shape
    raise TypeError(f"model_summary does not know the output shape of {type(module).__name__}.")


def _summary_row(name: str, module: nn.Module, out: tuple[int, ...]) -> dict:
    macs = 0
    if isinstance(module, nn.Conv2d):
        macs = math.prod(out) * module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
    elif isinstance(module, nn.Linear):
        macs = module.in_features * module.out_features
    return {"name": name, "kind": _describe(module), "output_shape": out,
            "params": sum(p.numel() for p in module.parameters(recurse=False)), "macs": int(macs),
            "flops": int(2 * macs), "activation_elements": math.prod(out)}


def _trace(module: nn.Module, name: str, shape: tuple[int, ...], rows: list[dict]) -> tuple[int, ...]:
    """Follow a shape through `module` as its forward() does, appending one row per layer in the order they run.

    Every container here runs its children in the order they were registered; a block's shortcut alone takes the
    block's input rather than the previous child's output (`_Block.forward`)."""
    children = list(module.named_children())
    if not children:
        out = _leaf_output_shape(module, shape)
        if min(out) < 1:
            raise ConfigError(f"A {shape[-1]}×{shape[-1]} map is too small for {name} ({_describe(module)}).")
        if not isinstance(module, nn.Flatten):
            rows.append(_summary_row(name, module, out))
        return out
    block_input, out = shape, shape
    for child_name, child in children:
        full = f"{name}.{child_name}" if name else child_name
        if isinstance(module, _Block) and child is module.shortcut:
            if _trace(child, full, block_input, rows) != out:
                raise ConfigError(f"{full} does not match the shape of its block's output.")
        else:
            out = _trace(child, full, out, rows)
    return out


def model_summary(cfg: ModelConfig, input_size: int | None = None) -> dict:
    """Per-layer name, kind, output shape, parameters and multiply-accumulates, plus totals.

    The model is built on PyTorch's meta device (no memory, no initialisation) and the shapes are worked out layer by
    layer rather than by running it (a forward pass on the meta device took seconds at depth 1202), so even a
    1202-layer net summarises in a fraction of a second. FLOPs are reported as 2 × MACs, the convention of
    `torch.utils.flop_counter`; the paper's "FLOPs" (Table 1: 3.8×10⁹ for ResNet-50) count multiply-adds, i.e. MACs."""
    cfg.validate()
    if input_size is not None:
        check_whole("The input size (pixels per side)", input_size, 1, MAX_INPUT_SIZE)
    size = input_size or default_input_size(cfg)
    with torch.device("meta"):
        model = ResNet(cfg)
    rows: list[dict] = []
    _trace(model, "", (3, size, size), rows)
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


__all__ = ["model_summary", "default_input_size", "estimate_training_memory", "available_memory", "check_fits",
           "MAX_INPUT_SIZE"]
