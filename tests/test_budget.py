"""Time budgets: speed measurement and its cache, plans that fit the budget, the remaining-time estimate."""
import json

import pytest
import torch

from resnet_viz.training import budget
from resnet_viz.config import ModelConfig, RunConfig, TrainConfig
from resnet_viz.errors import ConfigError

TINY = ModelConfig(depth=8, width=0.25)


@pytest.fixture
def speed_cache(tmp_path, monkeypatch, quiet_machine):
    monkeypatch.setenv("RESNET_VIZ_CACHE", str(tmp_path))
    monkeypatch.setattr(budget, "_BUSY_TIMINGS", {})
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tmp_path / "step_times.json"
    torch.set_num_threads(before)


def test_speed_is_measured_once_then_cached(speed_cache):
    device = torch.device("cpu")
    s = budget.speed_for(TINY, 16, device, "fp32")
    assert s.precision == "fp32" and s.step_seconds > 0 and s.eval_image_seconds > 0 and s.threads == 1
    cached = json.loads(speed_cache.read_text())
    assert len(cached["speeds"]) == 1
    # A doctored cache entry is what comes back: proof that nothing was re-measured.
    key = next(iter(cached["speeds"]))
    cached["speeds"][key]["step_seconds"] = 123.0
    speed_cache.write_text(json.dumps(cached))
    assert budget.speed_for(TINY, 16, device, "fp32").step_seconds == 123.0
    assert budget.speed_for(TINY, 16, device, "fp32", refresh=True).step_seconds < 123.0
    assert budget.is_cached(TINY, 16, device)
    assert not budget.is_cached(TINY, 32, device)


def test_a_timing_taken_beside_other_work_is_not_kept(speed_cache, monkeypatch):
    """A busy machine's timing serves the plan being made (measured once), but never reaches the cache on disk,
    so a later plan on a quiet machine measures afresh."""
    from conftest import machine_load
    device = torch.device("cpu")
    machine_load(monkeypatch, 1.5)
    measured = []
    real_measure = budget.measure
    monkeypatch.setattr(budget, "measure", lambda *a, **k: measured.append(1) or real_measure(*a, **k))
    busy = budget.speed_for(TINY, 16, device, "fp32")
    assert not speed_cache.exists()
    assert budget.speed_for(TINY, 16, device, "fp32") == busy and len(measured) == 1  # this process reuses it
    assert budget.is_cached(TINY, 16, device)
    machine_load(monkeypatch, 0.0)
    monkeypatch.setattr(budget, "_BUSY_TIMINGS", {})  # a later process: nothing of the busy timing is left
    assert not budget.is_cached(TINY, 16, device)
    budget.speed_for(TINY, 16, device, "fp32")
    assert len(measured) == 2 and len(json.loads(speed_cache.read_text())["speeds"]) == 1


def test_auto_precision_picks_a_measured_one(speed_cache):
    s = budget.speed_for(TINY, 16, torch.device("cpu"), "auto")
    assert s.precision in ("fp32", "bf16")
    if not budget.cpu_has_bf16():
        assert s.precision == "fp32"


def test_a_plan_fits_its_budget_and_gives_every_run_the_same_steps(speed_cache):
    configs = [RunConfig(model=ModelConfig(depth=8, width=0.25, residual=r), train=TrainConfig(batch_size=16,
               eval_images=20, precision="fp32")) for r in (False, True)]
    device = torch.device("cpu")
    short = budget.plan_runs(configs, 0.5, device)
    longer = budget.plan_runs(configs, 1.5, device)
    assert short.runs[0].steps == short.runs[1].steps == short.steps > 10
    assert longer.steps > 2 * short.steps
    for plan in (short, longer):
        assert plan.total_seconds <= plan.budget_seconds
        assert all(r.config.train.max_steps == r.steps for r in plan.runs)
        for r in plan.runs:  # a plan's configs are ones the trainer accepts, epochs included
            r.config.validate()
        # one more step each would not fit
        over = budget.QUEUE_OVERHEAD_S + sum(budget.run_seconds(plan.steps + 1, r.config.train, r.config.model,
                                                                r.speed) for r in plan.runs)
        assert over > plan.budget_seconds


@pytest.mark.parametrize("minutes", [0, -1, float("nan"), float("inf"), 10**9, "3"])
def test_a_nonsense_budget_is_refused(speed_cache, minutes):
    with pytest.raises(ConfigError):
        budget.plan_runs([RunConfig(model=TINY, train=TrainConfig(batch_size=16))], minutes, torch.device("cpu"))


def test_device_check_runs_at_tiny_sizes_on_a_cpu(tmp_path):
    """benchmarks/device_check.sh is the one command for a GPU machine; here it runs its CPU path end to end."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from cifar_fixtures import write_python_batches
    root = Path(__file__).resolve().parents[1]
    data = write_python_batches(tmp_path / "data")
    env = {**os.environ, "PYTHON": sys.executable, "RESNET_VIZ_CACHE": str(tmp_path / "cache")}
    out = subprocess.run(["bash", str(root / "benchmarks" / "device_check.sh"), "--tiny", "--data", str(data)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "| resnet-8 (width ×0.25) | 16 |" in out.stdout and "| resnet-8 (width ×0.25) | 32 |" in out.stdout
    assert "skipped (CUDA only)" in out.stdout and "degradation" in out.stdout


def test_cli_preset_lists_and_plans(known_speeds, capsys):
    from resnet_viz.commands.cli import main
    assert main(["preset", "--list"]) == 0
    listed = capsys.readouterr().out
    assert "degradation" in listed and "plain-56" in listed and "no-bn" in listed
    assert main(["preset", "degradation", "--minutes", "2", "--device", "cpu", "--plan-only"]) == 0
    err = capsys.readouterr().err
    assert "measuring" not in err  # known speeds: nothing is timed
    assert "plain-20" in err and "plain-56" in err and "estimated total" in err and "one-cycle" in err
    total = int(err.split("estimated total:")[1].split("s")[0])
    assert 100 <= total <= 120
    assert main(["preset", "degradation", "--minutes", "nan", "--plan-only"]) == 2
    assert "budget" in capsys.readouterr().err
