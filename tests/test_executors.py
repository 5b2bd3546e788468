"""Executors: every run records where it trained; with Ray (a local two-CPU instance, shared by the module) runs train
side by side, a killed run ends interrupted while the others go on, a stop cancels what has not started, and the
app's job queue hands jobs to the cluster. Without Ray the CLI says how to install it in one sentence."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cifar_fixtures import write_python_batches
from resnet_viz.commands.cli import main
from resnet_viz.config import ModelConfig, RunConfig, TrainConfig
from resnet_viz.execution.ray_cluster import KILLED, RAY_MISSING
from resnet_viz.storage.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--width", "0.25", "--batch-size", "32", "--eval-images", "20", "--device", "cpu"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_python_batches(tmp_path_factory.mktemp("cifar"), 10, 5)  # 100 train images: 3 steps an epoch


def tiny(data_dir, name, steps, seed=0) -> RunConfig:
    return RunConfig(model=ModelConfig(depth=8, width=0.25),
                     train=TrainConfig(epochs=10_000, max_steps=steps, batch_size=32, eval_images=20, device="cpu",
                                       seed=seed, eval_every=10_000, grad_norm_every=5, flush_every=4),
                     data_dir=str(data_dir), name=name)


def status_json(runs: Path, run_id: str) -> dict:
    return json.loads((runs / run_id / "status.json").read_text())


# ------------------------------------------------------------------------------------------------ without Ray ----
def test_sweep_crosses_seeds_and_records_the_local_executor(data_dir, tmp_path, capsys):
    runs = tmp_path / "runs"
    code = main(["--runs", str(runs), "--data", str(data_dir), "sweep", "--arch", "plain", "--depth", "8",
                 "--seeds", "3", "4", "--max-steps", "2", *TINY])
    assert code == 0 and capsys.readouterr().out.count("finished after 2 steps") == 2
    listed = sorted((r.summary() for r in RunStore(runs).list()), key=lambda s: s["train"]["seed"])
    assert [s["train"]["seed"] for s in listed] == [3, 4]
    assert [s["name"] for s in listed] == ["plain-8 (width ×0.25) seed 3", "plain-8 (width ×0.25) seed 4"]
    for s in listed:
        assert (s["executor"], s["node"]) == ("local", socket.gethostname())
        assert status_json(runs, s["id"])["executor"] == "local"


def test_ray_executor_without_ray_is_one_sentence(data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails, as where it is not installed
    code = main(["--runs", str(tmp_path / "runs"), "--data", str(data_dir), "train", "--depth", "8",
                 "--executor", "ray", *TINY])
    assert code == 2 and capsys.readouterr().err.strip() == f"error: {RAY_MISSING}"
    assert not (tmp_path / "runs").exists()

    from resnet_viz.execution.jobs import JobQueue
    queue = JobQueue(executor="ray")
    [job] = queue.submit([tiny(data_dir, "no ray", 2)], owner="me", runs_dir=str(tmp_path / "runs"))
    assert queue.wait(60)
    [job] = queue.jobs()
    assert (job.state, job.message) == ("failed", RAY_MISSING)


def test_executor_choices_are_checked(data_dir, tmp_path, capsys):
    assert main(["--data", str(data_dir), "train", "--depth", "8", "--ray-address", "10.0.0.1:6379", *TINY]) == 2
    assert "--ray-address needs --executor ray" in capsys.readouterr().err
    from resnet_viz.errors import ConfigError
    from resnet_viz.execution.jobs import JobQueue
    with pytest.raises(ConfigError, match="RESNET_VIZ_EXECUTOR"):
        JobQueue(executor="slurm").submit([tiny(data_dir, "x", 1)], owner="me")


# --------------------------------------------------------------------------------------------------- with Ray ----
@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    if os.environ.get("RESNET_VIZ_REQUIRE_RAY"):  # CI installs requirements-ray.txt: a missing Ray is a failure
        import ray
    else:
        ray = pytest.importorskip("ray")
    # The workers inherit the environment of ray.init: a cache folder of their own, not the one the session's other
    # tests (and the CLI processes they start) have been writing step times and decoded images into.
    before = os.environ.get("RESNET_VIZ_CACHE")
    os.environ["RESNET_VIZ_CACHE"] = str(tmp_path_factory.mktemp("ray-cache"))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="warning")

    @ray.remote(num_cpus=1)
    def warm_up():  # start both workers and import torch there, so the tests' runs start together
        import resnet_viz.training.trainer  # noqa: F401
        return os.getpid()

    assert len(set(ray.get([warm_up.remote(), warm_up.remote()]))) == 2
    yield ray
    ray.shutdown()
    if before is None:
        os.environ.pop("RESNET_VIZ_CACHE", None)
    else:
        os.environ["RESNET_VIZ_CACHE"] = before


@pytest.fixture(scope="module")
def executor(ray_cluster):
    from resnet_viz.execution.ray_cluster import RayExecutor
    return RayExecutor()


def test_two_runs_train_at_once_and_land_in_the_store(executor, data_dir, tmp_path):
    STEPS = 240
    runs = tmp_path / "runs"
    updates = []
    # Long enough (a few seconds) that the driver, polling every POLL_SECONDS, sees them while they train.
    states = executor.run([tiny(data_dir, "a", STEPS), tiny(data_dir, "b", STEPS, seed=1)], runs, None,
                          updates.append, threading.Event())
    assert [s.state for s in states] == ["finished", "finished"], [s.message for s in states]
    assert executor.resources == {"num_cpus": 1}
    statuses = [status_json(runs, s.run_id) for s in states]
    assert max(s["started"] for s in statuses) < min(s["finished"] for s in statuses)  # side by side
    for status in statuses:
        assert (status["status"], status["step"], status["executor"]) == ("finished", STEPS, "ray")
        assert status["node"] == socket.gethostname()
    stored = {r.name: r for r in RunStore(runs).list()}
    assert set(stored) == {"a", "b"} and all(r.has_checkpoint and len(r.metrics["loss"]) == STEPS
                                             for r in stored.values())
    assert any(u.state == "running" and u.progress is not None for u in updates), [(u.state, u.progress) for u in updates]


def test_a_killed_run_ends_interrupted_while_the_sweep_goes_on(executor, data_dir, tmp_path):
    runs = tmp_path / "runs"
    killed = []

    def kill_the_long_one(state):
        if state.label == "long" and state.steps > 0 and not killed:
            os.kill(state.pid, signal.SIGKILL)
            killed.append(state.run_id)

    long, short = executor.run([tiny(data_dir, "long", 100_000), tiny(data_dir, "short", 20)], runs, None,
                               kill_the_long_one, threading.Event())
    assert killed and long.state == "interrupted" and long.message == KILLED
    assert status_json(runs, killed[0])["status"] == "interrupted"  # said in the store too, not left "running"
    assert short.state == "finished" and RunStore(runs).get(short.run_id).state == "finished"


def test_stop_cancels_what_has_not_started_and_stops_the_rest(executor, data_dir, tmp_path):
    runs = tmp_path / "runs"
    stop = threading.Event()
    training = set()

    def stop_once_two_train(state):
        if state.state == "running" and state.steps > 0:
            training.add(state.key)
        if len(training) == 2:
            stop.set()  # what a first Ctrl-C does

    states = executor.run([tiny(data_dir, f"run {i}", 100_000) for i in range(3)], runs, None, stop_once_two_train,
                          stop)
    assert sorted(s.state for s in states) == ["cancelled", "stopped", "stopped"]
    stopped = [RunStore(runs).get(s.run_id) for s in states if s.state == "stopped"]
    assert all(r.state == "stopped" and r.has_checkpoint for r in stopped)
    assert len(RunStore(runs).list()) == 2  # the cancelled one never made a run folder


def test_the_apps_queue_hands_jobs_to_the_cluster(ray_cluster, data_dir, tmp_path):
    import time

    from resnet_viz.execution.jobs import JobQueue
    queue = JobQueue(executor="ray")
    runs = str(tmp_path / "runs")
    endless, short = queue.submit([tiny(data_dir, "endless", 100_000), tiny(data_dir, "short", 10)], owner="me",
                                  runs_dir=runs)
    deadline = time.time() + 240
    while not any(j.id == endless.id and j.progress is not None and j.progress.step > 0 for j in queue.jobs()):
        assert time.time() < deadline, queue.jobs()
        time.sleep(0.2)
    queue.stop(endless.id)  # the Train page's Stop button
    assert queue.wait(240), queue.jobs()
    jobs = {j.label: j for j in queue.jobs()}
    assert jobs["endless"].state == "stopped" and jobs["short"].state == "finished"
    assert jobs["short"].node == socket.gethostname() and len(jobs["short"].metrics["loss"]) == 10
    assert {r.summary()["executor"] for r in RunStore(runs).list()} == {"ray"}


def test_cli_sweep_on_a_cluster_by_address(ray_cluster, data_dir, tmp_path):
    runs = tmp_path / "runs"
    address = ray_cluster.get_runtime_context().gcs_address
    sweep = ["sweep", "--depth", "8", "--seeds", "0", "1", "--epochs", "100", "--max-steps", "10", *TINY]
    proc = subprocess.run([sys.executable, "-m", "resnet_viz", "--runs", str(runs), "--data", str(data_dir), *sweep,
                           "--executor", "ray", "--ray-address", address], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("finished after 10 steps") == 2 and f"Ray cluster at {address}" in proc.stderr
    listed = json.loads(subprocess.run([sys.executable, "-m", "resnet_viz", "--runs", str(runs), "list", "--json"],
                                       cwd=ROOT, capture_output=True, text=True, check=True).stdout)
    assert sorted(r["train"]["seed"] for r in listed) == [0, 1] and {r["executor"] for r in listed} == {"ray"}


def test_a_run_asks_for_at_least_one_cpu(ray_cluster):
    from resnet_viz.errors import ConfigError
    from resnet_viz.execution.ray_cluster import RayExecutor
    with pytest.raises(ConfigError, match="whole number of CPUs"):
        RayExecutor(cpus_per_run=0)
