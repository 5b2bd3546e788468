"""Training one run the way the app and the CLI do: the loop (`resnet_viz.training.trainer`) with what it needs from the
planner around it. The caller's two jobs, kept out of the loop: resolve the precision ("auto" becomes what
`resnet_viz.training.budget` measured faster here) and teach the planner the pace the run measured (`budget.record_observed`),
so the next plan rests on hundreds of real steps rather than a few timed ones.
"""
from __future__ import annotations

import torch

from .budget import Speed, record_observed, resolve_precision
from ..config import ModelConfig, RunConfig
from .loop_io import MeasuredPace, TrainResult
from .threads import BUSY_THRESHOLD
from .trainer import Trainer

MIN_PACE_STEPS = 20  # fewer steps say more about the warm-up than about the machine


def train(config: RunConfig, **trainer_kwargs) -> TrainResult:
    """Train `config` (a new run, or with `start` and `writer` a continued one: see `resnet_viz.training.extend`).
    `trainer_kwargs`: as for the Trainer (data, store, on_progress, stop_event, save, reserve_cores, start, writer)."""
    def precision(batch: int, device: torch.device) -> str:
        return resolve_precision(config.train.precision, config.model, batch, device)

    result = Trainer(config, precision=precision, **trainer_kwargs).run()
    record_pace(config.model, result.pace)
    return result


def record_pace(model: ModelConfig, pace: MeasuredPace | None) -> None:
    """Keep a finished run's pace as this machine's speed for its net, where it is one: enough steps, one thread
    count throughout, a device the planner times, and a machine that was not busy with other work meanwhile."""
    if pace is None or pace.steps < MIN_PACE_STEPS or len(pace.threads) > 1:
        return
    if pace.device.type not in ("cpu", "cuda"):
        return
    if pace.others_busy is not None and pace.others_busy > BUSY_THRESHOLD:
        return  # paced beside other work: not this machine's speed
    speed = Speed(step_seconds=pace.step_seconds, eval_image_seconds=pace.eval_image_seconds,
                  precision=pace.precision, threads=pace.threads[0] if pace.threads else 0)
    try:
        record_observed(model, pace.batch, pace.device, speed)
    except Exception:  # the cache is a convenience: never fail a finished run over it
        pass
