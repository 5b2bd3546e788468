"""One-click experiments, sized for the device: on a 2-core CPU the Degradation preset finishes in about three
minutes (a 10,000-image stratified subset, two epochs); on a GPU it uses the full training set."""
from __future__ import annotations

from dataclasses import dataclass

from .config import ModelConfig, RunConfig, TrainConfig


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
           "The same depths with shortcut connections. Now the deeper net trains at least as well (Fig. 6, middle).",
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
    """The training settings presets use on this kind of device."""
    # A short warm-up at lr/10 (the paper's remedy for ResNet-110) keeps the first steps of 56-layer nets from a loss
    # spike that a 156-step run has no time to recover from; every run of a preset gets the same, so the
    # comparison stays fair.
    if device_type == "cpu":
        return TrainConfig(epochs=2, subset=10_000, schedule="step", warmup_steps=15)
    return TrainConfig(epochs=10, subset=None, schedule="step", warmup_steps=200)


def preset_runs(preset: Preset, device_type: str, data_dir: str | None = None) -> list[RunConfig]:
    train = training_for(device_type)
    return [RunConfig(model=m, train=TrainConfig(**train.__dict__), data_dir=data_dir, name=f"{m.name} · {preset.key}")
            for m in preset.models]


def describe_training(train: TrainConfig) -> str:
    images = f"{train.subset:,}-image subset" if train.subset else "all 50,000 training images"
    return f"{train.epochs:g} epochs on a stratified {images}" if train.subset else \
        f"{train.epochs:g} epochs on {images}"
