"""Evaluation during training: loss and error on fixed image sets, in fp32, with one host sync; and the check that
calls a run diverged when its evaluation loss is not finite although its batch losses were."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..datasets.batches import normalize
from ..errors import ConfigError


def loss_and_error_sums(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                        channels_last: bool = False) -> torch.Tensor:
    """[summed cross-entropy, number misclassified] of the model as it is (mode unchanged, no gradients) on uint8
    images and their labels, in fp32 on the model's device: no host sync. Each batch moves to that device, so the
    images may live elsewhere. The one evaluation loop: the trainer's `evaluate` and the analyses' both sum here."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}.")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    loss_sum = torch.zeros((), device=device)
    wrong = torch.zeros((), device=device)
    with torch.no_grad():
        for i in range(0, len(labels), batch_size):
            x = normalize(images[i:i + batch_size].to(device))
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            logits = model(x).float()
            y = labels[i:i + batch_size].to(device)
            loss_sum += F.cross_entropy(logits, y, reduction="sum")
            wrong += (logits.argmax(1) != y).sum()
    return torch.stack([loss_sum, wrong])


def evaluate(model: torch.nn.Module, eval_sets: dict[str, tuple[torch.Tensor, torch.Tensor]], batch_size: int = 500,
             channels_last: bool = False) -> dict[str, float]:
    """Mean cross-entropy and error rate of the model in eval mode on each named set of (uint8 images, labels), both
    on the model's device: {"<name>_loss": …, "<name>_error": …}. Always in fp32, whatever precision training
    uses, so runs compare; channels_last if asked. Sums stay on the device, so all sets together cost one host sync.
    The model's train/eval mode is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        results = [loss_and_error_sums(model, x_all, y_all, batch_size, channels_last) / len(y_all)
                   for x_all, y_all in eval_sets.values()]
        values = iter(torch.cat(results).cpu().tolist())  # the one host sync
    finally:
        model.train(was_training)
    return {f"{name}_{what}": next(values) for name in eval_sets for what in ("loss", "error")}


def eval_divergence(evals: dict[str, list], step: int) -> str | None:
    """The message for a latest evaluation whose loss is NaN or infinite, else None. The batch losses can stay
    finite while the weights (or batch norm's running statistics) have blown up: that run diverged too."""
    for key, what in (("train_loss", "training"), ("test_loss", "test")):
        if evals[key] and not math.isfinite(evals[key][-1]):
            return (f"The {what} loss became {evals[key][-1]} at the evaluation after step {step}, although the batch "
                    f"losses were finite: training diverged. Try a lower learning rate or a warm-up.")
    return None
