"""AppTest for the Train page's live-demonstration parts: the time-budget plan shown before anything starts, and a
job list that belongs to the server (any tab, any reload) with queue position, ETA and Stop."""
import re
import threading

import pytest
import torch

from resnet_viz.training import budget
from resnet_viz.config import ModelConfig, RunConfig, TrainConfig
from resnet_viz.execution.jobs import JobQueue, job_queue

PAGE = "pages/2_Train.py"


def planner_page(app_test, tmp_path, data_dir, preset: str, minutes: float | None = None):
    """The Train page opened with `preset` picked (and `minutes` typed), its plan drawn without an error."""
    at = app_test(PAGE, tmp_path / "runs", data_dir)
    at.session_state["keep_preset"] = preset
    if minutes is not None:
        at.session_state["keep_preset_minutes"] = minutes
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_plan_is_shown_before_anything_starts(known_speeds, tmp_path, data_dir, monkeypatch, app_test):
    monkeypatch.setattr("resnet_viz.execution.jobs._QUEUE", JobQueue())
    at = planner_page(app_test, tmp_path, data_dir, "degradation", minutes=2.0)
    table = at.dataframe[0].value
    steps = budget.plan_runs([RunConfig(model=ModelConfig(depth=d, residual=False), train=TrainConfig(
        batch_size=128, eval_images=500, precision="bf16")) for d in (20, 56)], 2.0, torch.device("cpu"),
        run_overhead=budget.PROCESS_START_S).steps  # the app starts a process per run
    assert list(table["run"]) == ["plain-20", "plain-56"]
    assert list(table["steps"]) == [steps, steps] and set(table["precision"]) == {"bf16"}
    total = next(m.value for m in at.markdown if "Estimated total" in m.value)
    minutes, seconds = map(int, re.search(r"(\d+) min (\d+) s", total).groups())
    assert 100 <= 60 * minutes + seconds <= 120 and f"{steps:,} steps each" in total  # fits a 2-minute budget
    assert not job_queue().jobs()  # nothing started yet
    from resnet_viz.lecture.presets import FIG6_MIN_STEPS
    assert steps < FIG6_MIN_STEPS and any("here they take about" in w.value for w in at.warning)  # the risk, said
    at.session_state["keep_preset_minutes"] = 4.0
    at.run()
    assert int(at.dataframe[0].value["steps"][0]) > 1.9 * steps  # twice the time, about twice the steps
    assert int(at.dataframe[0].value["steps"][0]) >= FIG6_MIN_STEPS and not at.warning


def test_jobs_belong_to_the_server_not_the_tab(tmp_path, data_dir, monkeypatch, app_test):
    """A run queued from one tab shows in a fresh session (a reload, another tab) with its place in the queue, an
    estimate and a Stop button that works there."""
    queue = JobQueue()
    monkeypatch.setattr("resnet_viz.execution.jobs._QUEUE", queue)
    release = threading.Event()
    monkeypatch.setattr(queue, "_ensure_worker", lambda: None)  # nothing trains: the jobs stay queued
    tiny = RunConfig(model=ModelConfig(depth=8, width=0.25, residual=False),
                     train=TrainConfig(epochs=1, batch_size=16, eval_images=20, device="cpu"), data_dir=str(data_dir))
    first, second = queue.submit([tiny, tiny], owner="a-tab-that-was-closed", runs_dir=str(tmp_path / "runs"))
    at = app_test(PAGE, tmp_path / "runs", data_dir).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Runs on this server (2 active" in s.value for s in at.subheader)
    texts = " ".join(c.value for c in at.caption)
    assert "training now" in texts and "#2 in the queue" in texts
    stop_second = at.button(key=f"stop_{second.id}")
    stop_second.click().run()
    assert [j.state for j in queue.jobs()] == ["queued", "cancelled"]
    release.set()


def idle_queue(monkeypatch) -> JobQueue:
    """The app's queue with its worker switched off: what Start queues stays queued, to be read back."""
    queue = JobQueue()
    monkeypatch.setattr("resnet_viz.execution.jobs._QUEUE", queue)
    monkeypatch.setattr(queue, "_ensure_worker", lambda: None)
    return queue


def test_start_queues_the_plan_that_was_shown(known_speeds, tmp_path, data_dir, monkeypatch, app_test):
    """The machine gets busy between the plan and the click: Start still queues exactly what the table showed (steps,
    precision, threads) — it never re-plans."""
    from conftest import machine_load
    queue = idle_queue(monkeypatch)
    machine_load(monkeypatch, 0.0)
    at = planner_page(app_test, tmp_path, data_dir, "degradation", minutes=3.0)
    shown = at.dataframe[0].value
    total = next(m.value for m in at.markdown if "Estimated total" in m.value)
    threads = int(re.search(r"(\d+) CPU threads?", total).group(1))
    machine_load(monkeypatch, 8.0)  # a plan made now would get 1 thread and fewer steps
    at.button(key="preset_start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    jobs = queue.jobs()
    assert [j.config.model.name for j in jobs] == list(shown["run"])
    assert [j.config.train.max_steps for j in jobs] == [int(s) for s in shown["steps"]]
    assert [j.config.train.precision for j in jobs] == list(shown["precision"])
    assert {j.config.train.threads for j in jobs} == {threads}


def test_another_seed_is_planned_and_queued(known_speeds, tmp_path, data_dir, monkeypatch, app_test):
    """The Seed field makes the plan again for that seed, the plan says it, and Start queues it for every net."""
    queue = idle_queue(monkeypatch)
    at = planner_page(app_test, tmp_path, data_dir, "degradation")
    assert not any("seed" in m.value for m in at.markdown if "Estimated total" in m.value)  # seed 0 goes unsaid
    at.number_input(key="keep_preset_seed").set_value(2).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("seed 2" in m.value for m in at.markdown if "Estimated total" in m.value)
    at.button(key="preset_start").click().run()
    assert [j.config.train.seed for j in queue.jobs()] == [2, 2]


def test_the_fix_matches_the_degradation_runs(known_speeds, tmp_path, data_dir, monkeypatch, app_test):
    """After Degradation, The fix trains the same steps (and says so), whatever the minutes say; switched off, it
    plans from the minutes again."""
    from resnet_viz.lecture.presets import plan_preset, preset_by_key
    queue = idle_queue(monkeypatch)
    degradation = plan_preset(preset_by_key("degradation"), 1.0, torch.device("cpu"), str(data_dir))
    queue.submit([r.config for r in degradation.runs], owner="someone", runs_dir=str(tmp_path / "runs"),
                 plans=degradation.runs)
    at = planner_page(app_test, tmp_path, data_dir, "fix", minutes=5.0)
    assert list(at.dataframe[0].value["steps"]) == [degradation.steps] * 2
    assert any(f"matching your Degradation runs" in m.value for m in at.markdown)
    at.toggle(key="keep_preset_match").set_value(False).run()
    assert int(at.dataframe[0].value["steps"][0]) > degradation.steps  # 5 minutes, not 1


def test_a_custom_run_over_ten_minutes_asks_first(known_speeds, tmp_path, data_dir, monkeypatch, app_test):
    queue = idle_queue(monkeypatch)
    at = app_test(PAGE, tmp_path / "runs", data_dir).run()
    at.text_input(key="keep_train_depths").set_value("20, 56, 2000")
    at.multiselect(key="keep_train_archs").set_value(["plain"])
    at.number_input(key="keep_train_epochs").set_value(500.0)  # the tiny data's 120 images: one step an epoch
    at.button(key="queue_custom").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not queue.jobs()  # nothing queued before the user says so
    warning = next(w.value for w in at.warning if "Queue them anyway" in w.value)
    assert re.search(r"about \*\*\d+ h \d+ min\*\*", warning) and "plain-2000" in warning
    at.button(key="custom_confirm").click().run()
    assert [j.config.model.depth for j in queue.jobs()] == [20, 56, 2000]
    assert not at.warning
    assert all(j.planned_seconds for j in queue.jobs())  # the queue's ETA knows them: no "estimating…"


def test_a_short_custom_run_queues_at_once_with_its_estimate(known_speeds, tmp_path, data_dir, monkeypatch, app_test):
    queue = idle_queue(monkeypatch)
    at = app_test(PAGE, tmp_path / "runs", data_dir).run()
    at.text_input(key="keep_train_depths").set_value("20")
    at.multiselect(key="keep_train_archs").set_value(["plain"])
    at.number_input(key="keep_train_subset").set_value(1000)
    at.button(key="queue_custom").click().run()
    assert not at.exception, [e.value for e in at.exception]
    [job] = queue.jobs()
    assert job.planned_seconds and job.planned_seconds < 600
