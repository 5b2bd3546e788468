"""AppTest for the Train page's live-demonstration parts: the time-budget plan shown before anything starts, and a
job list that belongs to the server (any tab, any reload) with queue position, ETA and Stop."""
import re
import threading
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from resnet_viz import budget
from resnet_viz.config import ModelConfig, RunConfig, TrainConfig
from resnet_viz.jobs import JobQueue, job_queue

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60


def app(runs: Path, data: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("RESNET_VIZ_RUNS", str(runs))
    monkeypatch.setenv("RESNET_VIZ_DATA", str(data))
    return AppTest.from_file(str(ROOT / "pages/2_Train.py"), default_timeout=TIMEOUT)


def test_the_plan_is_shown_before_anything_starts(known_speeds, tmp_path, data_dir, monkeypatch):
    monkeypatch.setattr("resnet_viz.jobs._QUEUE", JobQueue())
    at = app(tmp_path / "runs", data_dir, monkeypatch)
    at.session_state["keep_preset"] = "degradation"
    at.session_state["keep_preset_minutes"] = 2.0
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    steps = budget.plan_runs([RunConfig(model=ModelConfig(depth=d, residual=False), train=TrainConfig(
        batch_size=128, eval_images=500, precision="bf16")) for d in (20, 56)], 2.0, torch.device("cpu")).steps
    assert list(table["run"]) == ["plain-20", "plain-56"]
    assert list(table["steps"]) == [steps, steps] and set(table["precision"]) == {"bf16"}
    total = next(m.value for m in at.markdown if "Estimated total" in m.value)
    minutes, seconds = map(int, re.search(r"(\d+) min (\d+) s", total).groups())
    assert 100 <= 60 * minutes + seconds <= 120 and f"{steps:,} steps each" in total  # fits a 2-minute budget
    assert not job_queue().jobs()  # nothing started yet
    at.session_state["keep_preset_minutes"] = 4.0
    at.run()
    assert int(at.dataframe[0].value["steps"][0]) > 1.9 * steps  # twice the time, about twice the steps


def test_jobs_belong_to_the_server_not_the_tab(tmp_path, data_dir, monkeypatch):
    """A run queued from one tab shows in a fresh session (a reload, another tab) with its place in the queue, an
    estimate and a Stop button that works there."""
    queue = JobQueue()
    monkeypatch.setattr("resnet_viz.jobs._QUEUE", queue)
    release = threading.Event()
    monkeypatch.setattr(queue, "_ensure_worker", lambda: None)  # nothing trains: the jobs stay queued
    tiny = RunConfig(model=ModelConfig(depth=8, width=0.25, residual=False),
                     train=TrainConfig(epochs=1, batch_size=16, eval_images=20, device="cpu"), data_dir=str(data_dir))
    first, second = queue.submit([tiny, tiny], owner="a-tab-that-was-closed", runs_dir=str(tmp_path / "runs"))
    at = app(tmp_path / "runs", data_dir, monkeypatch).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Runs on this server (2 active" in s.value for s in at.subheader)
    texts = " ".join(c.value for c in at.caption)
    assert "training now" in texts and "#2 in the queue" in texts
    stop_second = at.button(key=f"stop_{second.id}")
    stop_second.click().run()
    assert [j.state for j in queue.jobs()] == ["queued", "cancelled"]
    release.set()
