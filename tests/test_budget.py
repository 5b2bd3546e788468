"""Time budgets and fair CPU use: thread choice, speed measurement and its cache, plans that fit the budget."""
import json

import pytest
import torch

from resnet_viz import budget, compute
from resnet_viz.config import ModelConfig, RunConfig, TrainConfig
from resnet_viz.errors import ConfigError

TINY = ModelConfig(depth=8, width=0.25)


@pytest.fixture
def speed_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_VIZ_CACHE", str(tmp_path))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tmp_path / "step_times.json"
    torch.set_num_threads(before)


@pytest.mark.parametrize("others, reserve, cores, expected", [
    (0.0, 0, 2, 2), (0.2, 0, 2, 2), (1.0, 0, 2, 1), (0.9, 0, 16, 15), (3.0, 0, 2, 1), (0.0, 1, 2, 1),
    (0.0, 1, 16, 15), (2.4, 1, 16, 12),
])
def test_threads_fit_beside_other_work(others, reserve, cores, expected):
    assert compute.choose_threads(others, reserve, cores) == expected


def test_cpu_load_counts_other_processes_not_this_one(monkeypatch):
    """Machine-wide busy time minus this process's own, per second of wall time, in cores."""
    ticks = compute.os.sysconf("SC_CLK_TCK")
    readings = iter([(1000, 100), (1000 + 3 * ticks, 100 + 1 * ticks)])  # 3 cores-seconds busy, 1 of them ours
    clock = iter([10.0, 11.0])

    class FakeTime:
        monotonic = staticmethod(lambda: next(clock))
        sleep = staticmethod(lambda s: None)

    monkeypatch.setattr(compute, "_read_jiffies", lambda: next(readings))
    monkeypatch.setattr(compute, "time", FakeTime)
    load = compute.CpuLoad()
    assert load.others_busy(min_interval=0.0) == pytest.approx(2.0)


def test_cpu_load_reads_this_machine():
    load = compute.CpuLoad()
    assert 0.0 <= load.others_busy(min_interval=0.1) <= compute.usable_cores() + 0.5


def test_governor_with_a_fixed_thread_count_never_changes_it():
    before = torch.get_num_threads()
    try:
        g = compute.ThreadGovernor(fixed=1)
        assert g.start() == 1 and torch.get_num_threads() == 1
        g._last_check = -1e9
        assert g.maybe_adjust() == 1
    finally:
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


def test_auto_precision_picks_a_measured_one(speed_cache):
    s = budget.speed_for(TINY, 16, torch.device("cpu"), "auto")
    assert s.precision in ("fp32", "bf16")
    if not compute.cpu_has_bf16():
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
        # one more step each would not fit
        over = budget.QUEUE_OVERHEAD_S + sum(budget.run_seconds(plan.steps + 1, r.config.train, r.config.model,
                                                                r.speed) for r in plan.runs)
        assert over > plan.budget_seconds


@pytest.mark.parametrize("minutes", [0, -1, float("nan"), float("inf"), 10**9, "3"])
def test_a_nonsense_budget_is_refused(speed_cache, minutes):
    with pytest.raises(ConfigError):
        budget.plan_runs([RunConfig(model=TINY, train=TrainConfig(batch_size=16))], minutes, torch.device("cpu"))


def test_remaining_time_follows_the_runs_own_pace():
    assert budget.remaining_seconds(0, 100, 0.0) is None
    assert budget.remaining_seconds(25, 100, 50.0) == pytest.approx(150.0)
    assert budget.remaining_seconds(25, 100, 50.0, evals_left=3, seconds_per_eval=2.0) == pytest.approx(156.0)
