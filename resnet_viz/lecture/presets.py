"""One-click experiments, sized to the minutes a lecturer has on this machine.

A preset names its models; `plan_preset` measures this machine's step time for each (resnet_viz.training.budget), gives every
run the same number of steps — as many as fit in the budget — and picks the recipe for that length: brief runs get
the brief-run recipe below, runs of thousands of steps the paper's.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..config import CIFAR10_TRAIN_IMAGES, ModelConfig, RunConfig, TrainConfig, epochs_for_steps

# The default budget gives the Degradation preset more than FIG6_MIN_STEPS on a 2-core laptop CPU (780 steps
# per net on a 2-core AMD EPYC, 2026-12-07); 3 minutes gave 288, where plain-56 stayed near chance on one seed of three.
DEFAULT_MINUTES = 5.0
# From this many steps the brief-run recipe showed Fig. 6's shape on every seed tried (benchmarks/seed_study.py,
# seeds 0-2: plain-56 learned, >= 5 points above plain-20, ResNet-56 >= 10 below it); under it, the Train page warns.
FIG6_MIN_STEPS = 480
BRIEF_RUN_STEPS = 2_000  # below this, the paper's lr 0.1 start is too abrupt for a fresh ResNet-56 to recover from
BRIEF_LR = 0.05  # the peak of the one-cycle schedule brief runs use
BRIEF_BATCH = 128
PAPER_WARMUP_STEPS = 400  # the paper's ResNet-110 warm-up at lr 0.01, used by every long preset run


@dataclass(frozen=True)
class Preset:
    key: str
    title: str
    description: str
    models: tuple[ModelConfig, ...]


PRESETS = (
    Preset("degradation", "Degradation: plain-20 vs plain-56",
           "Two plain nets, 20 and 56 layers, trained for the same number of steps. Given enough steps (the plan "
           "says when there are too few), the deeper one learns but ends with the higher training error — the "
           "degradation problem of the paper's Fig. 1 and Fig. 6 (left).",
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


def preset_by_key(key: str) -> Preset:
    from ..errors import ConfigError
    for p in PRESETS:
        if p.key == key:
            return p
    raise ConfigError(f"No preset called {key!r}: choose one of {', '.join(p.key for p in PRESETS)}.")


def recipe_for_steps(steps: int, base: TrainConfig | None = None) -> TrainConfig:
    """The training recipe for a run of `steps` steps (every run of a preset gets the same one).

    Brief runs: a one-cycle schedule peaking at lr 0.05. At the paper's lr 0.1 a fresh ResNet-56 spikes (loss
    2.7 → 17 within 6 steps, even after 40 warm-up steps at 0.01) and a run of a few hundred steps ends at chance —
    the start-up trouble the paper reports for ResNet-110. Long runs: the paper's step schedule from lr 0.1 with its
    ResNet-110 warm-up (lr 0.01 for the first 400 iterations)."""
    base = base or TrainConfig()
    if steps < BRIEF_RUN_STEPS:
        return replace(base, lr=BRIEF_LR, schedule="onecycle", warmup_steps=0, batch_size=BRIEF_BATCH,
                       eval_images=500, eval_every=0, max_steps=steps)
    return replace(base, lr=0.1, schedule="step", warmup_steps=PAPER_WARMUP_STEPS, max_steps=steps, eval_every=0)


def preset_runs(preset: Preset, steps: int, data_dir: str | None = None, base: TrainConfig | None = None
                ) -> list[RunConfig]:
    """The preset's runs, each trained with the recipe for `steps` steps on all the training images."""
    train = recipe_for_steps(steps, base)
    train = replace(train, epochs=epochs_for_steps(steps, train.batch_size), subset=None)
    return [RunConfig(model=m, train=replace(train), data_dir=data_dir, name=f"{m.name} · {preset.key}")
            for m in preset.models]


def plan_preset(preset: Preset, minutes: float | None, device, data_dir: str | None = None,
                base: TrainConfig | None = None, refresh: bool = False, reserve: int = 0, steps: int | None = None,
                run_overhead: float = 0.0):
    """A budget.Plan for the preset: its runs with as many steps as fit in `minutes` on `device` (or exactly `steps`,
    to match runs trained before), recipe included, measured with the threads its runs would get now (the cores
    that nothing but the demo itself uses, less `reserve` for a server) — and fixed to those threads."""
    from ..training.budget import plan_runs
    from ..training.threads import threads_a_run_would_get
    probe = preset_runs(preset, steps or 100, data_dir, base)  # the recipe's batch size and evaluations decide speed
    with threads_a_run_would_get(device.type, reserve):
        plan = plan_runs(probe, minutes, device, refresh=refresh, steps=steps, run_overhead=run_overhead)
    configs = preset_runs(preset, plan.steps, data_dir, base)
    for planned, config in zip(plan.runs, configs):
        planned.config = replace(config, train=replace(config.train, precision=planned.speed.precision,
                                                       threads=plan.threads))
    return plan


def preset_models() -> list[ModelConfig]:
    """Every net of every preset, once: measured together, so a second preset's plan needs no measuring."""
    models: list[ModelConfig] = []
    for p in PRESETS:
        models.extend(m for m in p.models if m not in models)
    return models


def nets_to_measure(device, reserve: int = 0) -> list[ModelConfig]:
    """The preset nets whose speed on this machine (with the threads a run would get now) is not cached yet."""
    from ..training.budget import is_cached
    from ..training.threads import threads_a_run_would_get
    with threads_a_run_would_get(device.type, reserve):
        return [m for m in preset_models() if not is_cached(m, BRIEF_BATCH, device)]


def measure_nets(models: list[ModelConfig], device, reserve: int = 0, on_net=None) -> None:
    """Time `models` now (budget.speed_for), calling `on_net(index, model)` before each: the Train page's progress."""
    from ..training.budget import speed_for
    from ..training.threads import threads_a_run_would_get
    with threads_a_run_would_get(device.type, reserve):
        for i, model in enumerate(models):
            if on_net is not None:
                on_net(i, model)
            speed_for(model, BRIEF_BATCH, device)


def preset_needs_measuring(preset: Preset, device, reserve: int = 0) -> bool:
    """Whether plan_preset would time steps first (this machine's speed for some of its nets is not cached yet)."""
    from ..training.budget import is_cached
    from ..training.threads import threads_a_run_would_get
    with threads_a_run_would_get(device.type, reserve):
        return not all(is_cached(m, BRIEF_BATCH, device) for m in preset.models)


# The experiment a lecture compares a preset's runs with: The fix is shown against Degradation, and back.
PARTNERS = {"fix": "degradation", "degradation": "fix"}


def preset_key_of(run_name: str | None) -> str | None:
    """The preset a run was trained by, from its name ("plain-56 · degradation"), or None for other runs."""
    if not run_name or " · " not in run_name:
        return None
    key = run_name.rsplit(" · ", 1)[1].strip()
    return key if any(p.key == key for p in PRESETS) else None


def steps_to_match(preset: Preset, trained: list[tuple[str | None, int | None]]) -> tuple[str, int] | None:
    """(partner preset's title, its steps) when runs of this preset's partner exist — `trained` lists (run name,
    planned steps), newest first, from the run store and the queue — so the two experiments train the same steps
    and their charts compare step for step; None when there is nothing to match."""
    partner = PARTNERS.get(preset.key)
    for name, steps in trained:
        if partner and steps and preset_key_of(name) == partner:
            return preset_by_key(partner).title.split(":")[0], int(steps)
    return None


def brief_run_rule(epochs: float, subset: int | None, batch_size: int, max_steps: int | None = None,
                   schedule: str | None = None, lr: float | None = None,
                   train_images: int = CIFAR10_TRAIN_IMAGES
                   ) -> tuple[str, float, str | None]:
    """The schedule and peak lr of a custom run where the user chose neither — the CLI's and the Train page's rule:
    the paper's step schedule at lr 0.1, unless the run is brief (under BRIEF_RUN_STEPS steps); then one-cycle to
    lr 0.05, because at lr 0.1 a fresh ResNet-56 spikes and a run of a few hundred steps ends at chance.
    Returns (schedule, lr, a sentence saying what was chosen and why, or None when the user chose both)."""
    images = min(subset or train_images, train_images)
    steps = max(1, int(epochs * (images // max(1, batch_size))))
    if max_steps:
        steps = min(steps, max_steps)
    brief = steps < BRIEF_RUN_STEPS
    chosen_schedule = schedule or ("onecycle" if brief else "step")
    chosen_lr = lr if lr is not None else BRIEF_LR if brief and chosen_schedule != "step" else TrainConfig().lr
    if schedule is not None and lr is not None:
        return chosen_schedule, chosen_lr, None
    if brief and schedule is None and lr is None:
        note = (f"a brief run (~{steps:,} steps): one-cycle schedule peaking at lr {chosen_lr:g}. The paper's lr 0.1 "
                f"step schedule is built for 64k steps; in a brief run it makes a fresh ResNet-56 collapse. "
                f"Schedule step with lr 0.1 gives the paper's recipe.")
    else:
        note = (f"~{steps:,} steps: {chosen_schedule} schedule at lr {chosen_lr:g}"
                + (" (the paper's recipe)." if chosen_schedule == "step" and chosen_lr == 0.1 else "."))
    return chosen_schedule, chosen_lr, note


def describe_training(train: TrainConfig) -> str:
    data = f"a stratified {train.subset:,}-image subset" if train.subset else "all 50,000 training images"
    schedule = {"onecycle": f"a one-cycle learning rate peaking at {train.lr:g}",
                "cosine": f"a cosine learning rate from {train.lr:g}",
                "constant": f"a constant learning rate of {train.lr:g}",
                "step": f"the paper's step schedule from lr {train.lr:g}"}[train.schedule]
    if train.warmup_steps:
        schedule += f" after {train.warmup_steps} warm-up steps at {train.lr / 10:g}"
    length = f"{train.max_steps:,} steps of {train.batch_size}" if train.max_steps else f"{train.epochs:g} epochs"
    return f"{length} on {data}, {schedule}"
