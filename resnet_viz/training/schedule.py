"""How a run's steps are laid out: its length in steps, when it evaluates, and the learning rate at each step."""
from __future__ import annotations

import math
from dataclasses import dataclass


def lr_at(step: int, total: int, cfg) -> float:
    """Learning rate for a step. 'step' is the paper's schedule scaled to the run: /10 at 50% and at 75% (32k and
    48k of 64k iterations). Warm-up runs at lr/10 first, as the paper does for ResNet-110."""
    base = cfg.lr
    if step < cfg.warmup_steps:
        return base / 10
    if cfg.schedule == "constant":
        return base
    if cfg.schedule == "step":
        return base * (1.0 if step < 0.5 * total else 0.1 if step < 0.75 * total else 0.01)
    start = min(cfg.warmup_steps, total - 1)
    progress = (step - start) / max(1, total - start)
    if cfg.schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * progress))
    # one-cycle: linear rise from base/25 over the first quarter, then a cosine fall to ~0 (suits brief runs)
    if progress < 0.25:
        return base * (1 / 25 + (1 - 1 / 25) * progress / 0.25)
    return base * 0.5 * (1 + math.cos(math.pi * (progress - 0.25) / 0.75))


EVALUATIONS_PER_RUN = 12  # when a run does not say how often to evaluate


def eval_interval(steps: int, eval_every: int = 0) -> int:
    """Steps between evaluations: as configured, else about EVALUATIONS_PER_RUN over the run's `steps`."""
    return eval_every or max(1, steps // EVALUATIONS_PER_RUN)


@dataclass
class StepPlan:
    """How a run's steps are laid out. A continued run trains steps [start, total); evaluations count from start."""
    batch: int
    steps_per_epoch: int
    total: int
    eval_every: int
    start: int = 0

    @classmethod
    def for_run(cls, n_train: int, tc, start: int = 0) -> "StepPlan":
        batch = min(tc.batch_size, n_train)
        steps_per_epoch = max(1, n_train // batch)  # drop the ragged last batch: BN sees equal batches
        total = max(1, round(tc.epochs * steps_per_epoch))
        if tc.max_steps:
            total = min(total, tc.max_steps)
        return cls(batch, steps_per_epoch, total, eval_every=eval_interval(total - start, tc.eval_every), start=start)

    def evaluates_at(self, step: int) -> bool:
        return (step - self.start) % self.eval_every == 0 or step == self.total

    def evaluations_after(self, step: int) -> int:
        """How many evaluations come after `step` (up to and including the last step)."""
        if step >= self.total:
            return 0
        done, length = step - self.start, self.total - self.start
        return length // self.eval_every - done // self.eval_every + (1 if length % self.eval_every else 0)
