"""The app's runs train in a process of their own (resnet_viz.execution.run_process): the server's interpreter is never shared
with a training loop. Real child processes, tiny data."""
import json
import os
import signal
import threading
import time

from resnet_viz.config import ModelConfig, RunConfig, TrainConfig
from resnet_viz.execution.executors import RunRequest
from resnet_viz.execution.run_process import TrainingProcess
from resnet_viz.storage.store import RunStore


def tiny(data_dir, epochs=1, **train) -> RunConfig:
    return RunConfig(model=ModelConfig(depth=8, width=0.25, residual=False),
                     train=TrainConfig(epochs=epochs, batch_size=16, eval_images=20, threads=1, **train),
                     data_dir=str(data_dir))


def once_training(action, from_step: int = 0):
    """A state callback that does `action` once, at the first live state at or past `from_step`."""
    done = threading.Event()

    def on_state(state):
        if state.progress is not None and state.progress.step >= from_step and not done.is_set():
            done.set()
            action()
    return on_state


def test_a_run_trains_in_its_own_process_and_reports_live(tmp_path, data_dir):
    runs = tmp_path / "runs"
    process = TrainingProcess(1, RunRequest(tiny(data_dir, epochs=2)), str(runs))
    states = []
    final = process.follow(states.append)
    assert final.state == "finished" and final.message == "Finished and saved."
    assert final.pid == process.pid != os.getpid()  # trained elsewhere
    live = [s for s in states if s.progress is not None]
    assert live and live[-1].progress.metrics is not None and "loss" in live[-1].progress.metrics
    assert "grad_norms" not in live[-1].progress.metrics  # per-layer arrays stay in the store
    [run] = RunStore(runs).list()
    assert run.id == final.run_id and run.state == "finished" and run.has_checkpoint
    assert len(run.metrics["loss"]) == final.steps == 14  # 120 images // 16 × 2 epochs


def test_stop_ends_the_run_after_its_step_and_keeps_it(tmp_path, data_dir):
    runs = tmp_path / "runs"
    process = TrainingProcess(1, RunRequest(tiny(data_dir, epochs=200)), str(runs))
    final = process.follow(once_training(process.stop, from_step=2))
    assert final.state == "stopped" and 2 <= final.steps < 1400
    [run] = RunStore(runs).list()
    assert run.state == "stopped" and run.has_checkpoint


def test_a_killed_training_process_leaves_its_run_interrupted(tmp_path, data_dir):
    runs = tmp_path / "runs"
    process = TrainingProcess(1, RunRequest(tiny(data_dir, epochs=500)), str(runs))
    final = process.follow(once_training(lambda: os.kill(process.pid, signal.SIGKILL)))
    assert final.state == "interrupted" and "killed" in final.message
    status = json.loads((runs / final.run_id / "status.json").read_text())
    assert status["status"] == "interrupted"


def test_the_server_going_away_stops_the_run(tmp_path, data_dir):
    """Its stdin closes with the server: the run stops after its current step and keeps what it trained, rather
    than train on for nobody."""
    runs = tmp_path / "runs"
    process = TrainingProcess(1, RunRequest(tiny(data_dir, epochs=500)), str(runs))
    t0 = time.time()
    final = process.follow(once_training(process._proc.stdin.close))
    assert final.state == "stopped" and time.time() - t0 < 60
