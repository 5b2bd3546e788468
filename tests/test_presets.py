"""Presets: every run of a preset trains the same way, with the recipe for its length, sized to a time budget."""
import pytest
import torch

from resnet_viz.config import ModelConfig
from resnet_viz.errors import ConfigError
from resnet_viz.lecture.presets import (BRIEF_RUN_STEPS, PRESETS, describe_training, plan_preset, preset_by_key, preset_runs,
                                recipe_for_steps)
from resnet_viz.training.trainer import lr_at


@pytest.mark.parametrize("steps", [50, 300, 5000])
def test_presets_are_valid_and_fair(steps):
    for preset in PRESETS:
        runs = preset_runs(preset, steps, data_dir="/data")
        assert len(runs) == len(preset.models) >= 2
        assert len({id(run.train) for run in runs}) == len(runs)  # no mutable config shared between jobs
        for run in runs:
            run.validate()
            assert run.data_dir == "/data" and preset.key in run.name
            assert run.train == runs[0].train  # a comparison is only fair with equal training
            assert run.train.max_steps == steps and run.train.subset is None
            assert round(run.train.epochs * (50_000 // run.train.batch_size)) == steps


def test_brief_runs_use_one_cycle_and_long_runs_the_papers_recipe():
    brief, long = recipe_for_steps(300), recipe_for_steps(BRIEF_RUN_STEPS * 2)
    assert brief.schedule == "onecycle" and brief.batch_size == 128
    # one-cycle peaks at the configured lr and starts well below it: no step at the peak rate on fresh weights
    assert max(lr_at(s, 300, brief) for s in range(300)) == pytest.approx(brief.lr, rel=0.05)
    assert lr_at(0, 300, brief) < brief.lr / 10
    assert long.lr == 0.1 and long.schedule == "step" and long.warmup_steps == 400
    assert "one-cycle" in describe_training(brief) and "300 steps" in describe_training(brief)
    assert "warm-up" in describe_training(long) and "all 50,000" in describe_training(long)


def test_unknown_preset_is_one_clear_sentence():
    assert preset_by_key("fix").models[1] == ModelConfig(depth=56)
    with pytest.raises(ConfigError, match="degradation"):
        preset_by_key("nope")


def test_a_preset_plan_fits_the_budget(tmp_path, monkeypatch):
    """Planned on tiny stand-ins for the preset's nets (the real ones take seconds per step here)."""
    from resnet_viz.lecture.presets import Preset
    monkeypatch.setenv("RESNET_VIZ_CACHE", str(tmp_path))
    tiny = Preset("tiny", "tiny", "", (ModelConfig(depth=8, width=0.25, residual=False), ModelConfig(depth=8,
                                                                                                     width=0.25)))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        plan = plan_preset(tiny, 1.0, torch.device("cpu"), data_dir="/data")
    finally:
        torch.set_num_threads(before)
    assert plan.total_seconds <= 60
    steps = plan.steps
    assert steps > 10 and all(r.steps == steps for r in plan.runs)
    for r in plan.runs:
        assert r.config.train.max_steps == steps and r.config.train.precision in ("fp32", "bf16")
        assert r.config.train.schedule == recipe_for_steps(steps).schedule
