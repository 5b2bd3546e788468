"""Configurations, each one dataclass passed whole (nanoGPT style). Validation lives here so the CLI, the app and the
trainer all reject a bad choice with the same student-readable message."""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field, fields

from .errors import ConfigError

FAMILIES = ("cifar", "imagenet")
SHORTCUTS = ("A", "B", "C")
STEMS = ("cifar", "imagenet")
SCHEDULES = ("step", "onecycle", "cosine", "constant")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")
IMAGENET_DEPTHS = (18, 34, 50, 101, 152)
IMAGENET_HEAD = 1000  # classifier outputs of an ImageNet net as described (Build, `summary`): torchvision's
CIFAR10_HEAD = 10  # classifier outputs of every net trained here: CIFAR-10's classes
# Paper Table 6 (CIFAR-10 test error, %, residual nets with option A); plain nets have no table, only Fig. 6.
PAPER_TABLE6_ERROR = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43, 1202: 7.93}
PAPER_TABLE6_PARAMS_M = {20: 0.27, 32: 0.46, 44: 0.66, 56: 0.85, 110: 1.7, 1202: 19.4}
# Paper Table 1 "FLOPs" of the ImageNet nets at 224×224, ×10⁹: the paper counts multiply-adds.
PAPER_TABLE1_GMULT_ADDS = {18: 1.8, 34: 3.6, 50: 3.8, 101: 7.6, 152: 11.3}
# ResNet-1202 is the paper's deepest net and the Build page stops at 2,000. A bound is needed at all because merely
# sizing a run (the meta-device summary that checks it fits in memory) costs memory per layer: depth 1,000,000,004
# grew by ~180 MB/s until the process was killed.
MAX_CIFAR_DEPTH = 2000
MAX_CLASSES = 100_000
CIFAR10_TRAIN_IMAGES = 50_000
MAX_EPOCHS = 10_000  # the paper's 64k iterations are ~164 epochs
MAX_SEED = 2**32 - 1  # what numpy and most tools accept
MAX_FLUSH_EVERY = 100_000  # steps buffered on the device between host copies


# Numbers come from argparse, widgets, JSON files and Python callers: bools are not numbers, NaN and inf are not
# settings.
def is_whole(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_finite(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def check_whole(what: str, value, low: int, high: int | None = None) -> None:
    """A whole number in [low, high]; the message names the setting as the user knows it."""
    if not is_whole(value):
        raise ConfigError(f"{what} must be a whole number, got {value!r}.")
    if value < low or (high is not None and value > high):
        bounds = f"between {low:,} and {high:,}" if high is not None else f"at least {low:,}"
        raise ConfigError(f"{what} must be {bounds}, got {value:,}.")


def _check_flag(what: str, value) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{what} must be true or false, got {value!r}.")



def _cifar_depths_hint(depth: int) -> str:
    lower = max(8, (depth - 2) // 6 * 6 + 2)
    return f"{lower} or {lower + 6}" if lower != depth else str(depth)


@dataclass
class ModelConfig:
    family: str = "cifar"  # "cifar": paper §4.2, depth 6n+2; "imagenet": ResNet-18/34/50/101/152 layout
    depth: int = 20
    residual: bool = True  # False builds the plain twin: the same layers without the shortcuts
    shortcut: str | None = None  # "A" zero-pad identity, "B" projection where the shape changes, "C" projection everywhere
    batchnorm: bool = True
    width: float = 1.0  # channel multiplier (16/32/64 x width for cifar, 64..512 x width for imagenet)
    stem: str | None = None  # imagenet family only: "imagenet" (7x7/2 conv + max-pool) or "cifar" (3x3/1, no pool)
    num_classes: int = 10

    def __post_init__(self) -> None:
        # Resolve the per-family defaults here so a saved config always says what was actually built.
        if self.shortcut is None:
            self.shortcut = "A" if self.family == "cifar" else "B"
        if self.stem is None:
            self.stem = "cifar" if self.family == "cifar" else "imagenet"

    def validate(self) -> "ModelConfig":
        if self.family not in FAMILIES:
            raise ConfigError(f"Unknown model family {self.family!r}: choose 'cifar' (the paper's 6n+2 CIFAR nets) "
                              f"or 'imagenet' (ResNet-18/34/50/101/152).")
        if not is_whole(self.depth):
            raise ConfigError(f"Depth must be a whole number, got {self.depth!r}.")
        if self.family == "cifar":
            if self.depth > MAX_CIFAR_DEPTH:
                raise ConfigError(f"Depth {self.depth:,} is far beyond what can be built or trained here: CIFAR "
                                  f"ResNets go up to depth {MAX_CIFAR_DEPTH:,} (the paper's deepest is 1202).")
            if self.depth < 8 or (self.depth - 2) % 6 != 0:
                raise ConfigError(
                    f"A CIFAR ResNet has depth 6n+2 with n ≥ 1 (three stages of n blocks of two 3×3 convs, plus the "
                    f"first conv and the classifier): 8, 14, 20, 32, 44, 56, 110, 1202 … — {self.depth} is not one "
                    f"of them. Try {_cifar_depths_hint(self.depth)}.")
        elif self.depth not in IMAGENET_DEPTHS:
            raise ConfigError(f"ImageNet-style ResNets come in depths {', '.join(map(str, IMAGENET_DEPTHS))}; "
                              f"{self.depth} is not one of them.")
        if self.shortcut not in SHORTCUTS:
            raise ConfigError(f"Unknown shortcut option {self.shortcut!r}: the paper defines A (zero-padding identity, "
                              f"no parameters), B (projection only where the shape changes) and C (projection "
                              f"everywhere).")
        if self.stem not in STEMS:
            raise ConfigError(f"Unknown stem {self.stem!r}: choose 'imagenet' (7×7 stride-2 conv + max-pool) or "
                              f"'cifar' (3×3 stride-1 conv, for 32×32 images).")
        if self.family == "cifar" and self.stem != "cifar":
            raise ConfigError("The CIFAR family always uses the 3×3 CIFAR stem; the 'imagenet' stem belongs to the "
                              "imagenet family.")
        if not is_finite(self.width) or not self.width > 0:
            raise ConfigError(f"Width must be a positive multiplier of the channel counts (1 = the paper's "
                              f"16/32/64 filters), got {self.width!r}.")
        base = 16 if self.family == "cifar" else 64
        if round(base * self.width) < 1:
            raise ConfigError(f"Width {self.width} leaves the first stage with no channels; use at least "
                              f"1/{2 * base}.")
        if base * self.width * 2 ** 3 > 65536:
            raise ConfigError(f"Width {self.width} asks for more channels than any device can hold; try 1–8.")
        if not is_whole(self.num_classes) or self.num_classes < 2:
            raise ConfigError(f"A classifier needs at least 2 classes, got {self.num_classes!r}.")
        check_whole("The number of classes", self.num_classes, 2, MAX_CLASSES)
        _check_flag("residual", self.residual)
        _check_flag("batchnorm", self.batchnorm)
        return self

    @property
    def name(self) -> str:
        """Short label used in charts: 'plain-56', 'resnet-56', 'resnet-50 (B)' …"""
        kind = "resnet" if self.residual else "plain"
        label = f"{kind}-{self.depth}"
        default_shortcut = "A" if self.family == "cifar" else "B"
        extras = []
        if self.residual and self.shortcut != default_shortcut:
            extras.append(f"shortcut {self.shortcut}")
        if not self.batchnorm:
            extras.append("no BN")
        if self.width != 1:
            extras.append(f"width ×{self.width:g}")
        if self.family == "imagenet" and self.stem == "cifar":
            extras.append("CIFAR stem")
        return label + (f" ({', '.join(extras)})" if extras else "")


@dataclass
class TrainConfig:
    epochs: float = 2.0
    subset: int | None = None  # stratified subset of the training set; None = all of it
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "step"  # the paper's /10 at 50% and 75% of the run (32k and 48k of 64k iterations)
    warmup_steps: int = 0  # steps at lr/10 first, as the paper does for ResNet-110
    seed: int = 0
    device: str = "auto"
    eval_every: int = 0  # steps between evaluations; 0 = about 12 evaluations per run
    eval_images: int = 500  # fixed, stratified evaluation subsets of the train and the test set
    record_grad_norms: bool = True
    grad_norm_every: int = 1
    flush_every: int = 25  # steps between host syncs for progress and metric flushes
    branch_ratio_every: int = 10  # residual nets: log ‖F(x)‖/‖shortcut(x)‖ per block (64 test images) every N steps
    max_steps: int | None = None  # cap on the number of steps (tests, quick looks); None = epochs decide
    precision: str = "auto"  # training forward pass: "auto" (bf16 where measured faster), "fp32" or "bf16"
    threads: int = 0  # CPU intra-op threads; 0 = the free cores, re-checked while training

    def validate(self) -> "TrainConfig":
        # Every number is checked for type and range, so NaN, inf, text or a list from a hand-edited config or a
        # typo is refused here with a sentence, not deep in the trainer with a traceback.
        if not is_finite(self.epochs) or not 0 < self.epochs <= MAX_EPOCHS:
            raise ConfigError(f"Epochs must be a number above 0 and at most {MAX_EPOCHS:,}, got {self.epochs!r}.")
        if self.subset is not None and (not is_whole(self.subset) or self.subset < 10):
            raise ConfigError(f"A subset needs a whole number of at least 10 images (one per class), got "
                              f"{self.subset!r}.")
        if not is_whole(self.batch_size) or self.batch_size < 1:
            raise ConfigError(f"Batch size must be a positive whole number, got {self.batch_size!r}.")
        if not is_finite(self.lr) or not self.lr > 0:
            raise ConfigError(f"The learning rate must be a positive number, got {self.lr!r}.")
        if not is_finite(self.momentum) or not 0 <= self.momentum < 1:
            raise ConfigError(f"Momentum must be in [0, 1), got {self.momentum!r}.")
        if not is_finite(self.weight_decay) or self.weight_decay < 0:
            raise ConfigError(f"Weight decay must be a number ≥ 0, got {self.weight_decay!r}.")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"Unknown schedule {self.schedule!r}: choose one of {', '.join(SCHEDULES)}.")
        if self.device not in DEVICES:
            raise ConfigError(f"Unknown device {self.device!r}: choose one of {', '.join(DEVICES)}.")
        check_whole("Warm-up steps", self.warmup_steps, 0)
        check_whole("eval_every", self.eval_every, 0)
        check_whole("branch_ratio_every", self.branch_ratio_every, 0)
        check_whole("grad_norm_every", self.grad_norm_every, 1)
        check_whole("flush_every", self.flush_every, 1, MAX_FLUSH_EVERY)
        if not is_whole(self.eval_images) or self.eval_images < 10:
            raise ConfigError(f"Evaluate on at least 10 images, got {self.eval_images!r}.")
        if self.max_steps is not None:
            check_whole("max_steps", self.max_steps, 1)
        check_whole("The seed", self.seed, 0, MAX_SEED)
        _check_flag("record_grad_norms", self.record_grad_norms)
        if self.precision not in PRECISIONS:
            raise ConfigError(f"Unknown precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}.")
        check_whole("Threads", self.threads, 0, 1024)
        return self


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data_dir: str | None = None  # None = $RESNET_VIZ_DATA or the default download folder
    name: str | None = None

    @property
    def label(self) -> str:
        """How the run is named wherever it is listed: its name, or its net's."""
        return self.name or self.model.name

    def validate(self) -> "RunConfig":
        self.model.validate()
        self.train.validate()
        for what, value in (("The data folder", self.data_dir), ("The run name", self.name)):
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{what} must be text, got {value!r}.")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        """A config from its JSON form (call validate() before trusting it). Unknown keys are ignored, so configs
        written by newer versions still load; anything that is not a mapping where one belongs is a ConfigError."""
        def pick(dc, values):
            if values is None:
                values = {}
            if not isinstance(values, dict):
                raise ConfigError(f"the {dc.__name__} part is {type(values).__name__}, not an object")
            names = {f.name for f in fields(dc)}
            return dc(**{k: v for k, v in values.items() if k in names})
        if not isinstance(d, dict):
            raise ConfigError(f"the config is {type(d).__name__}, not an object")
        return cls(model=pick(ModelConfig, d.get("model")), train=pick(TrainConfig, d.get("train")),
                   data_dir=d.get("data_dir"), name=d.get("name"))


def epochs_for_steps(steps: int, batch_size: int, train_images: int = CIFAR10_TRAIN_IMAGES) -> float:
    """The epochs that make `steps` steps of `batch_size` on CIFAR-10's training set (the trainer drops the ragged
    last batch of an epoch, so round(epochs × steps per epoch) == steps)."""
    return steps / max(1, train_images // batch_size)
