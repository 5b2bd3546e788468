"""Synthetic run metrics for the figure tests, shaped like the run store's (see resnet_viz.figures.runs)."""
from __future__ import annotations

import numpy as np

from resnet_viz.config import ModelConfig
from resnet_viz.figures import RunSeries
from resnet_viz.nets.models import ResNet, layer_names


def cifar_layer_names(depth: int, **model) -> list[str]:
    return layer_names(ResNet(ModelConfig(depth=depth, **model).validate()))


def fake_metrics(n_layers: int, steps: int = 50, evals: int = 6, seed: int = 0, scale: float = 1.0) -> dict:
    rng = np.random.default_rng(seed)
    step = np.arange(steps)
    lr = np.where(step < steps // 2, 0.1, 0.01).astype(np.float32)
    es = np.linspace(0, steps - 1, evals).astype(int)
    return {
        "step": step,
        "loss": np.linspace(2.3, 0.5, steps, dtype=np.float32) + 0.05 * rng.standard_normal(steps).astype(np.float32),
        "batch_error": np.linspace(0.9, 0.2, steps, dtype=np.float32),
        "lr": lr,
        "grad_norm_step": step,
        "grad_norms": (scale * 10 ** rng.uniform(-3, 0, (steps, n_layers))).astype(np.float32),
        "eval_step": es,
        "train_loss": np.linspace(2.3, 0.6, evals, dtype=np.float32),
        "train_error": np.linspace(0.9, 0.25, evals, dtype=np.float32),
        "test_loss": np.linspace(2.3, 0.8, evals, dtype=np.float32),
        "test_error": np.linspace(0.9, 0.3, evals, dtype=np.float32),
    }


def fake_run(residual: bool, depth: int, seed: int = 0, **metrics) -> RunSeries:
    """A RunSeries of a CIFAR net with its real layer names and synthetic metrics."""
    names = cifar_layer_names(depth)
    return RunSeries(f"{'resnet' if residual else 'plain'}-{depth}", fake_metrics(len(names), seed=seed, **metrics),
                     names, residual=residual, depth=depth)


def four_runs() -> list[RunSeries]:
    """plain-20, plain-56, resnet-20, resnet-56."""
    return [fake_run(residual, depth, seed=i)
            for i, (residual, depth) in enumerate([(False, 20), (False, 56), (True, 20), (True, 56)])]
