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

import string
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from ..errors import ConfigError

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


__all__ = ["ResNet", "BasicBlock", "Bottleneck", "ZeroPadShortcut", "ProjectionShortcut", "Stem", "build_model",
           "weight_layers", "layer_names", "count_parameters", "shortcut_kind", "conv3x3", "conv1x1", "IMAGENET_LAYOUT"]
