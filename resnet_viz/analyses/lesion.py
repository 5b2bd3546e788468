"""Veit et al. 2016: delete one block, or k random blocks, at test time. A ResNet degrades gracefully (it behaves
like an ensemble of paths); a plain net collapses."""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..nets.models import ProjectionShortcut, ResNet, ZeroPadShortcut, _Block
from .common import (batches, budget_subset, check_images, images_for_budget, model_device, model_inputs,
                     model_label, named_blocks, prepared, require_resnet)

NOT_REMOVABLE = "changes the shape: nothing else connects its input to the next layer"


def removability(block: _Block) -> tuple[bool, str | None]:
    """(can the block be deleted, a note on what remains or why not)."""
    if block.shortcut is not None:
        if isinstance(block.shortcut, ZeroPadShortcut):
            return True, ("downsampling block: only its shortcut path remains (option A: subsample the input and "
                          "pad the new channels with zeros)")
        if isinstance(block.shortcut, ProjectionShortcut):
            return True, "only its shortcut path remains (the 1×1 projection conv and its BN)"
        return True, None
    if block.changes_shape:
        return False, NOT_REMOVABLE
    return True, None


def _head(model: ResNet, h: torch.Tensor) -> torch.Tensor:
    return model.fc(model.flatten(model.avgpool(h)))


def _lesion_correct(model: ResNet, images: torch.Tensor, labels: torch.Tensor, lesions: list[tuple[int, ...]],
                    batch_size: int) -> tuple[int, list[int]]:
    """(correct predictions of the intact net, correct predictions with each set of block indices deleted).

    Deleting blocks changes nothing before the first deleted one, so every block's input is computed once per batch
    and each lesioned forward pass starts at its first deleted block."""
    device = model_device(model)
    blocks = [b for _, b in named_blocks(model)]
    base, correct = 0, [0] * len(lesions)
    with torch.no_grad():
        for s in batches(len(images), batch_size):
            y = labels[s].to(device)
            h = model.stem(model_inputs(images[s], device))
            block_inputs = []
            for block in blocks:
                block_inputs.append(h)
                h = block(h)
            base += int((_head(model, h).argmax(1) == y).sum())
            for j, deleted in enumerate(lesions):
                if not deleted:
                    correct[j] += int((_head(model, h).argmax(1) == y).sum())
                    continue
                start = min(deleted)
                for i in deleted:
                    blocks[i].lesioned = True
                try:
                    g = block_inputs[start]
                    for block in blocks[start:]:
                        g = block(g)
                finally:
                    for i in deleted:
                        blocks[i].lesioned = False
                correct[j] += int((_head(model, g).argmax(1) == y).sum())
    return base, correct


def lesion_single(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 128,
                  max_images: int | None = None) -> dict:
    """Veit et al. 2016: delete each block on its own at test time and measure the accuracy.

    Returns {"baseline": accuracy of the intact net, "images": how many images were used, "blocks": [{"block",
    "removable", "reason", "accuracy"}, …] in depth order}. Accuracies are fractions in [0,1]. A residual block is
    always removable: deleting it leaves its shortcut (for a downsampling or projection block `reason` notes that
    only the shortcut path — zero-pad or projection — remains). A plain block is removable only where its shape does
    not change; otherwise `removable` is False, `accuracy` None and `reason` says why.
    Cost: about 1 + (blocks)/2 forward passes over the `budget_subset` of the images (analyses.common)."""
    check_images(images, labels)
    model = require_resnet(model, "The lesion study")
    blocks = named_blocks(model)
    info = [removability(b) for _, b in blocks]
    removable = [i for i, (ok, _) in enumerate(info) if ok]
    passes = 1 + sum((len(blocks) - i) / len(blocks) for i in removable)
    idx = budget_subset(model, images, labels, passes, max_images)
    n = len(idx)
    with prepared(model):
        base, correct = _lesion_correct(model, images[idx], labels[idx], [(i,) for i in removable], batch_size)
    accuracy = dict(zip(removable, (c / n for c in correct)))
    return {
        "baseline": base / n,
        "images": n,
        "blocks": [{"block": name, "removable": ok, "reason": reason, "accuracy": accuracy.get(i)}
                   for i, ((name, _), (ok, reason)) in enumerate(zip(blocks, info))],
    }


def lesion_random(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                  k_values: Sequence[int] | None = None, draws: int = 5, seed: int = 0, batch_size: int = 128,
                  max_images: int | None = None) -> dict[int, list[float]]:
    """Veit et al. 2016, Fig. 5: delete k randomly chosen removable blocks at once, `draws` times for each k.

    Returns {k: [accuracy of each draw]} (fractions in [0,1]); k = 0 gives the intact net. `k_values` defaults to
    1..min(8, removable blocks). The same seed gives the same draws. A ResNet's accuracy falls smoothly with k; a plain
    net (whose removable blocks are those that keep the shape) collapses. Uses `budget_subset` of the images
    (`lesion_random_images` says how many). Cost: about draws × Σₖ k/(k+1) forward passes over them."""
    check_images(images, labels)
    model = require_resnet(model, "The lesion study")
    k_values, lesions, passes = _random_plan(model, k_values, draws, seed)
    idx = budget_subset(model, images, labels, passes, max_images)
    n = len(idx)
    with prepared(model):
        _, correct = _lesion_correct(model, images[idx], labels[idx], lesions, batch_size)
    result: dict[int, list[float]] = {}
    for j, k in enumerate(k for k in k_values for _ in range(draws)):
        result.setdefault(k, []).append(correct[j] / n)
    return result


def lesion_random_images(model: nn.Module, images: torch.Tensor, k_values: Sequence[int] | None = None,
                         draws: int = 5, seed: int = 0, max_images: int | None = None) -> int:
    """How many of `images` `lesion_random` evaluates with these arguments: its intact accuracy (k = 0) is measured
    on them, which need not be the images of `lesion_single`, sized to a budget of its own."""
    model = require_resnet(model, "The lesion study")
    return images_for_budget(model, images, _random_plan(model, k_values, draws, seed)[2], max_images)


def _random_plan(model: ResNet, k_values: Sequence[int] | None, draws: int, seed: int
                 ) -> tuple[list[int], list[tuple[int, ...]], float]:
    """(the k values, the blocks deleted in each draw, the forward passes they cost) for `lesion_random`."""
    blocks = named_blocks(model)
    removable = [i for i, (_, b) in enumerate(blocks) if removability(b)[0]]
    if k_values is None:
        k_values = range(1, min(8, len(removable)) + 1)
    k_values = [int(k) for k in k_values]
    bad = [k for k in k_values if k < 0 or k > len(removable)]
    if bad:
        raise ConfigError(f"Cannot delete {bad[0]} blocks: {model_label(model)} has {len(removable)} removable "
                          f"blocks (plain blocks that change the shape cannot be removed). Choose k from 0 to "
                          f"{len(removable)}.")
    if draws < 1:
        raise ConfigError(f"draws must be at least 1, got {draws}.")
    rng = np.random.default_rng(seed)
    lesions = [tuple(sorted(int(i) for i in rng.choice(removable, size=k, replace=False))) for k in k_values
               for _ in range(draws)]
    passes = 1 + sum((len(blocks) - min(d)) / len(blocks) for d in lesions if d)
    return k_values, lesions, passes


def lesioned_logits(model: nn.Module, images: torch.Tensor, blocks: Iterable[str] = (), batch_size: int = 250
                    ) -> np.ndarray:
    """The model's logits (float32 [N, classes]) with the named blocks deleted — to look at what a lesion does."""
    check_images(images)
    by_name = dict(named_blocks(model))
    names = list(blocks)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ConfigError(f"{unknown[0]!r} is not a block of {model_label(model)}; blocks are "
                          f"{', '.join(list(by_name)[:3])} … {list(by_name)[-1] if by_name else ''}.")
    for n in names:
        ok, reason = removability(by_name[n])
        if not ok:
            raise ConfigError(f"{n} cannot be deleted: it {reason}.")
    device = model_device(model)
    with prepared(model), torch.no_grad():
        for n in names:
            by_name[n].lesioned = True
        out = [model(model_inputs(images[s], device)).float().cpu() for s in batches(len(images), batch_size)]
    return torch.cat(out).numpy()
