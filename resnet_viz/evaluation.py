"""Evaluation during training: loss and error on fixed image sets, in fp32, with one host sync; and the check that
calls a run diverged when its evaluation loss is not finite although its batch losses were."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .data import normalize


def evaluate(model: torch.nn.Module, eval_sets: dict[str, tuple[torch.Tensor, torch.Tensor]], batch_size: int = 500,
             channels_last: bool = False) -> dict[str, float]:
    """Mean cross-entropy and error rate of the model in eval mode on each named set of (uint8 images, labels), both
    on the model's device: {"<name>_loss": …, "<name>_error": …}. Always in fp32, whatever precision training
    uses, so runs compare; channels_last if asked. Sums stay on the device, so all sets together cost one host sync.
    The model's train/eval mode is restored afterwards."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        results = []
        with torch.no_grad():
            for x_all, y_all in eval_sets.values():
                loss_sum = torch.zeros((), device=device)
                wrong = torch.zeros((), device=device)
                for i in range(0, len(y_all), batch_size):
                    x = normalize(x_all[i:i + batch_size])
                    if channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    logits = model(x).float()
                    y = y_all[i:i + batch_size]
                    loss_sum += F.cross_entropy(logits, y, reduction="sum")
                    wrong += (logits.argmax(1) != y).sum()
                results.append(torch.stack([loss_sum, wrong]) / len(y_all))
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
