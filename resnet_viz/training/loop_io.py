"""What the training loop (`resnet_viz.training.trainer`) takes in besides its config — where a continued run starts — and
what it gives back: its result, with the pace it measured."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class StartState:
    """Where a continued run starts: built from its checkpoint and curves by `resnet_viz.training.extend`."""
    run_id: str
    step: int
    weights: dict[str, torch.Tensor]  # the model's state_dict: weights and BatchNorm statistics
    momentum: dict[str, torch.Tensor]  # parameter name -> SGD momentum buffer (empty: momentum starts from zero)
    metrics: dict  # the run's saved curves, appended to from `step` on
    order_seed: int  # seeds a new data order where the saved one cannot continue (generator_state None)
    generator_state: torch.Tensor | None = None
    epoch_perm: torch.Tensor | None = None  # the saved epoch's order, begun at step perm_start
    perm_start: int = 0
    hold_lr: float | None = None  # every new step trains at this learning rate; None: the config's schedule
    previous_seconds: float = 0.0  # the run's wall time before this session

    def data_order(self, device: torch.device) -> tuple[torch.Generator, torch.Tensor | None, int]:
        """(generator, the current epoch's order or None, the step that order began at)."""
        generator = torch.Generator(device=device)
        if self.generator_state is None:
            return generator.manual_seed(self.order_seed), None, self.step
        generator.set_state(self.generator_state)
        if self.epoch_perm is None:
            return generator, None, self.step
        return generator, self.epoch_perm.to(device), self.perm_start


@dataclass
class MeasuredPace:
    """A finished run's own pace, as the loop measured it (evaluations apart from training steps)."""
    steps: int  # trained in this session
    batch: int
    device: torch.device
    step_seconds: float
    eval_image_seconds: float
    precision: str
    threads: list[int]  # the thread counts it trained with; more than one: the governor changed it midway
    others_busy: float | None  # the cores other processes kept busy meanwhile (CPU runs), None elsewhere


@dataclass
class TrainResult:
    run_id: str
    status: str
    steps: int
    metrics: dict[str, np.ndarray]
    layer_names: list[str]
    seconds: float
    diverged_step: int | None = None
    model: torch.nn.Module | None = field(default=None, repr=False)
    pace: MeasuredPace | None = None  # finished runs only
