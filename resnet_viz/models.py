"""Plain and residual networks, built so that a plain net is exactly its ResNet twin minus the shortcuts.

Two families share one `ResNet` class:
  * "cifar" — He et al. 2015, §4.2: a 3×3 conv with 16·w filters, three stages of n basic blocks (two 3×3 convs each)
    with 16/32/64·w filters on 32/16/8 maps, global average pool, fc. Depth = 6n+2. Shortcut option A by default.
  * "imagenet" — ResNet-18/34 (basic blocks) and 50/101/152 (bottlenecks), laid out as torchvision's
    `models/resnet.py`: 7×7/2 conv + 3×3/2 max-pool stem ("conv1"), stages 2–5 whose first block is the seed
    article's "convolutional block" (projection shortcut) and the rest "identity blocks", named res2a, res2b, …
    As in torchvision (ResNet v1.5) the stride sits on the 3×3 conv of a bottleneck, not the first 1×1 as in the
    paper; the pool before the classifier is a global average pool (the seed article's 2×2 pool is a slip).

Every conv and linear layer has a readable name in depth order (`stem.conv`, `stage2.block3.conv1`,
`stage3.res3a.shortcut.conv`, `fc`) and every ReLU is its own, non-in-place module, so hooks (captum, analyses)
see each activation separately.
"""
from __future__ import annotations

import math
import os
import string
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig, check_whole
from .errors import ConfigError

MAX_INPUT_SIZE = 4096  # pixels per side for a summary; ImageNet nets are built for 224

IMAGENET_LAYOUT = {  # depth -> (block type, blocks per stage)
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=bias)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=bias)


def norm_layer(planes: int, batchnorm: bool) -> nn.Module:
    # Identity keeps the module tree (and so every layer name) the same with BN on or off.
    return nn.BatchNorm2d(planes) if batchnorm else nn.Identity()


class ZeroPadShortcut(nn.Module):
    """Option A: identity that subsamples by the stride and pads the new channels with zeros. No parameters, which is
    why a CIFAR ResNet and its plain twin have exactly the same parameter count."""

    def __init__(self, in_planes: int, out_planes: int, stride: int):
        super().__init__()
        self.stride = stride
        self.extra_channels = out_planes - in_planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra_channels:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))
        return x

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra_channels={self.extra_channels}"


class ProjectionShortcut(nn.Module):
    """Options B/C: a 1×1 conv (with the block's stride) and BN — the seed article's "convolutional block"."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, batchnorm: bool):
        super().__init__()
        self.conv = conv1x1(in_planes, out_planes, stride, bias=not batchnorm)
        self.bn = norm_layer(out_planes, batchnorm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


def make_shortcut(in_planes: int, out_planes: int, stride: int, option: str, batchnorm: bool) -> nn.Module:
    shape_changes = stride != 1 or in_planes != out_planes
    if option == "C" or (option == "B" and shape_changes):
        return ProjectionShortcut(in_planes, out_planes, stride, batchnorm)
    if shape_changes:
        return ZeroPadShortcut(in_planes, out_planes, stride)
    return nn.Identity()


def shortcut_kind(shortcut: nn.Module | None) -> str:
    if shortcut is None:
        return "none"
    if isinstance(shortcut, ProjectionShortcut):
        return "projection"
    if isinstance(shortcut, ZeroPadShortcut):
        return "zero-pad"
    return "identity"


class _Block(nn.Module):
    """What basic and bottleneck blocks share: the optional shortcut, the output ReLU and lesioning.

    `lesioned = True` removes the block at test time (Veit et al. 2016): a residual block then passes only its
    shortcut, a plain block passes its input unchanged (possible only where the shape does not change)."""

    expansion = 1

    def _finish_init(self, in_planes: int, out_planes: int, stride: int, residual: bool, option: str,
                     batchnorm: bool) -> None:
        self.shortcut = make_shortcut(in_planes, out_planes, stride, option, batchnorm) if residual else None
        self.relu_out = nn.ReLU()
        self.changes_shape = stride != 1 or in_planes != out_planes
        self.lesioned = False

    @property
    def residual(self) -> bool:
        return self.shortcut is not None

    @property
    def article_kind(self) -> str:
        """The seed article's words: a 'convolutional block' has a projection shortcut, an 'identity block' not."""
        if self.shortcut is None:
            return "plain block"
        return "convolutional block" if isinstance(self.shortcut, ProjectionShortcut) else "identity block"

    def branch(self, x: torch.Tensor) -> torch.Tensor:  # F(x): the residual function
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.lesioned:
            if self.shortcut is not None:
                return self.relu_out(self.shortcut(x))
            if self.changes_shape:
                raise ConfigError("A plain block that changes the shape cannot be removed: nothing else connects "
                                  "its input to the next layer.")
            return x
        out = self.branch(x)
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.relu_out(out)


class BasicBlock(_Block):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int, residual: bool, option: str, batchnorm: bool):
        super().__init__()
        self.conv1 = conv3x3(in_planes, planes, stride, bias=not batchnorm)
        self.bn1 = norm_layer(planes, batchnorm)
        self.relu1 = nn.ReLU()
        self.conv2 = conv3x3(planes, planes, bias=not batchnorm)
        self.bn2 = norm_layer(planes, batchnorm)
        self._finish_init(in_planes, planes, stride, residual, option, batchnorm)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))


class Bottleneck(_Block):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int, residual: bool, option: str, batchnorm: bool):
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = conv1x1(in_planes, planes, bias=not batchnorm)
        self.bn1 = norm_layer(planes, batchnorm)
        self.relu1 = nn.ReLU()
        self.conv2 = conv3x3(planes, planes, stride, bias=not batchnorm)
        self.bn2 = norm_layer(planes, batchnorm)
        self.relu2 = nn.ReLU()
        self.conv3 = conv1x1(planes, out_planes, bias=not batchnorm)
        self.bn3 = norm_layer(out_planes, batchnorm)
        self._finish_init(in_planes, out_planes, stride, residual, option, batchnorm)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


class Stem(nn.Module):
    def __init__(self, out_planes: int, kind: str, batchnorm: bool):
        super().__init__()
        if kind == "imagenet":
            self.conv = nn.Conv2d(3, out_planes, kernel_size=7, stride=2, padding=3, bias=not batchnorm)
        else:
            self.conv = conv3x3(3, out_planes, bias=not batchnorm)
        self.bn = norm_layer(out_planes, batchnorm)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1) if kind == "imagenet" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn(self.conv(x)))
        return self.maxpool(x) if self.maxpool is not None else x


def _block_names(stage_number: int, count: int, family: str) -> list[str]:
    if family == "cifar":
        return [f"block{i + 1}" for i in range(count)]
    if count <= len(string.ascii_lowercase):  # the article's res2a, res2b, … (Caffe/Keras convention)
        return [f"res{stage_number}{string.ascii_lowercase[i]}" for i in range(count)]
    return [f"res{stage_number}a"] + [f"res{stage_number}b{i}" for i in range(1, count)]


class ResNet(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.family == "cifar":
            n = (cfg.depth - 2) // 6
            block, counts, base, first_stage = BasicBlock, (n, n, n), 16, 1
        else:
            kind, counts = IMAGENET_LAYOUT[cfg.depth]
            block, base, first_stage = (BasicBlock if kind == "basic" else Bottleneck), 64, 2
        widths = [max(1, round(base * cfg.width * 2**i)) for i in range(len(counts))]

        self.stem = Stem(widths[0], cfg.stem, cfg.batchnorm)
        self.in_planes = widths[0]
        self.stage_names: list[str] = []
        for i, (planes, count) in enumerate(zip(widths, counts)):
            number = first_stage + i
            stride = 1 if i == 0 else 2
            self.add_module(f"stage{number}", self._make_layer(block, planes, count, stride, number))
            self.stage_names.append(f"stage{number}")
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(self.in_planes, cfg.num_classes)
        del self.in_planes
        self._init_weights()

    def _make_layer(self, block: type[_Block], planes: int, count: int, stride: int, number: int) -> nn.Sequential:
        layers = OrderedDict()
        for name, s in zip(_block_names(number, count, self.cfg.family), [stride] + [1] * (count - 1)):
            layers[name] = block(self.in_planes, planes, s, self.cfg.residual, self.cfg.shortcut, self.cfg.batchnorm)
            self.in_planes = planes * block.expansion
        return nn.Sequential(layers)

    def _init_weights(self) -> None:
        if self.fc.weight.is_meta:  # a shape-only model (model_summary): no values to set, and on the meta device
            return                  # these calls would cost seconds at depth 1202
        for m in self.modules():  # He et al. 2015 (the "MSRA" init), as the paper and torchvision use
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, name) for name in self.stage_names]

    def blocks(self) -> list[tuple[str, _Block]]:
        return [(name, m) for name, m in self.named_modules() if isinstance(m, _Block)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages():
            x = stage(x)
        x = self.flatten(self.avgpool(x))
        return self.fc(x)


def build_model(cfg: ModelConfig) -> ResNet:
    return ResNet(cfg.validate())


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every conv and linear layer, in depth order, with its readable name."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def layer_names(model: nn.Module) -> list[str]:
    return [name for name, _ in weight_layers(model)]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


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
    layer rather than by running it, so even a 1202-layer net summarises in a fraction of a second. FLOPs are
    reported as 2 × MACs, the convention of `torch.utils.flop_counter`; the paper's "FLOPs" (Table 1: 3.8×10⁹ for
    ResNet-50) count multiply-adds, i.e. MACs."""
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


def human_count(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.2f}G"
    if n >= 1e6:
        return f"{n / 1e6:.2f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}K"
    return str(n)


__all__ = ["ResNet", "BasicBlock", "Bottleneck", "ZeroPadShortcut", "ProjectionShortcut", "Stem", "build_model",
           "weight_layers", "layer_names", "count_parameters", "model_summary", "estimate_training_memory",
           "check_fits", "available_memory", "human_count", "shortcut_kind", "conv3x3", "conv1x1", "IMAGENET_LAYOUT"]
