"""One-click experiments, sized for the device: on a 2-core CPU the Degradation preset finishes in about three
minutes (an 8,000-image stratified subset, two epochs); on a GPU it uses the full training set."""
from __future__ import annotations

from dataclasses import dataclass

from .config import ModelConfig, RunConfig, TrainConfig

BRIEF_RUN_STEPS = 2_000  # below this, the paper's lr 0.1 start is too abrupt for a fresh ResNet-56 to recover from
BRIEF_LR = 0.05  # the peak of the one-cycle schedule brief runs use


@dataclass(frozen=True)
class Preset:
    key: str
    title: str
    description: str
    models: tuple[ModelConfig, ...]


PRESETS = (
    Preset("degradation", "Degradation: plain-20 vs plain-56",
           "Two plain nets, 20 and 56 layers. The deeper one ends with the higher training loss — the degradation "
           "problem of the paper's Fig. 1 and Fig. 6 (left).",
           (ModelConfig(depth=20, residual=False), ModelConfig(depth=56, residual=False))),
    Preset("fix", "The fix: ResNet-20 vs ResNet-56",
           "The same depths with shortcut connections. Now the 56-layer net trains about as well as the 20-layer one, "
           "far better than plain-56 (Fig. 6, middle; in the paper's full-length runs it ends ahead).",
           (ModelConfig(depth=20), ModelConfig(depth=56))),
    Preset("all", "All four",
           "Plain and residual at 20 and 56 layers: degradation and its fix in one comparison.",
           (ModelConfig(depth=20, residual=False), ModelConfig(depth=56, residual=False), ModelConfig(depth=20),
            ModelConfig(depth=56))),
    Preset("no-bn", "Without BatchNorm: plain-20, BN on vs off",
           "Where gradients really do vanish or explode: a plain net without BatchNorm, next to the same net with it.",
           (ModelConfig(depth=20, residual=False), ModelConfig(depth=20, residual=False, batchnorm=False))),
)


def training_for(device_type: str) -> TrainConfig:
    """The training settings presets use on this kind of device (every run of a preset gets the same ones)."""
    if device_type == "cpu":
        # ~124 steps. The paper's lr 0.1 is built for 64k iterations: at 0.1 a fresh ResNet-56 spikes (loss 2.7 → 17
        # within 6 steps, even after 40 steps of warm-up at 0.01) and a run this short ends at chance — the paper saw
        # the same start-up trouble at 110 layers. A one-cycle schedule peaking at 0.05 trains all four nets.
        return TrainConfig(epochs=2, subset=8_000, lr=BRIEF_LR, schedule="onecycle", eval_images=250, eval_every=12)
    # ~3,900 steps on all the data: the paper's recipe (step schedule, lr 0.1) with its ResNet-110 warm-up
    # (lr 0.01 for about 400 iterations, until the training error is below 80%).
    return TrainConfig(epochs=10, subset=None, schedule="step", warmup_steps=400)


def preset_runs(preset: Preset, device_type: str, data_dir: str | None = None) -> list[RunConfig]:
    train = training_for(device_type)
    return [RunConfig(model=m, train=TrainConfig(**train.__dict__), data_dir=data_dir, name=f"{m.name} · {preset.key}")
            for m in preset.models]


def describe_training(train: TrainConfig) -> str:
    data = f"a stratified {train.subset:,}-image subset" if train.subset else "all 50,000 training images"
    schedule = {"onecycle": f"a one-cycle learning rate peaking at {train.lr:g}",
                "cosine": f"a cosine learning rate from {train.lr:g}",
                "constant": f"a constant learning rate of {train.lr:g}",
                "step": f"the paper's step schedule from lr {train.lr:g}"}[train.schedule]
    if train.warmup_steps:
        schedule += f" after {train.warmup_steps} warm-up steps at {train.lr / 10:g}"
    return f"{train.epochs:g} epochs on {data}, {schedule}"
