"""Extending a run: 1 epoch + 1 more equals 2 epochs straight; curves append; failures leave the run as it was."""
import json
import os
import threading

import numpy as np
import pytest
import torch

from cifar_fixtures import make_images
from resnet_viz.training.checkpoint import TRAINING_STATE_PREFIX, read_checkpoint
from resnet_viz.config import ModelConfig, RunConfig, TrainConfig
from resnet_viz.datasets.cifar10 import Cifar10Tensors
from resnet_viz.errors import ConfigError, RunStoreError
from resnet_viz.training.extend import LOCK_FILE, extend_run, prepare_extension
from resnet_viz.storage.store import RunStore
from resnet_viz.training.trainer import Trainer

BATCH = 16
N_TRAIN = 120  # 7 steps per epoch: the last 8 images of each epoch's order are dropped


@pytest.fixture(scope="module")
def data():
    x, y = make_images(N_TRAIN // 10, seed=0)
    tx, ty = make_images(4, seed=1)

    def nchw(a):
        return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))
    return Cifar10Tensors(nchw(x), torch.from_numpy(y), nchw(tx), torch.from_numpy(ty),
                          tuple(str(i) for i in range(10)), "tiny in-memory")


def config(epochs=1.0, residual=True, **train) -> RunConfig:
    settings = dict(epochs=epochs, batch_size=BATCH, eval_images=20, device="cpu", precision="fp32", threads=1,
                    schedule="constant", lr=0.05, flush_every=3, seed=5, branch_ratio_every=2)
    settings.update(train)
    return RunConfig(model=ModelConfig(depth=8, width=0.25, residual=residual), train=TrainConfig(**settings))


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(x, y, msg=name)  # fp32 tolerance (in practice the runs agree bit for bit)


def test_one_epoch_plus_one_more_equals_two_straight(data, tmp_path):
    store = RunStore(tmp_path)
    first = Trainer(config(1), data=data, store=store).run()
    extended = extend_run(store, first.run_id, 1, data=data)
    straight = Trainer(config(2), data=data, store=store).run()
    assert extended.run_id == first.run_id and extended.status == "finished"
    assert_same_weights(extended.model, straight.model)
    m, s = extended.metrics, straight.metrics
    np.testing.assert_allclose(m["loss"], s["loss"], rtol=1e-6)
    np.testing.assert_allclose(m["grad_norms"], s["grad_norms"], rtol=1e-5)
    np.testing.assert_allclose(m["branch_ratios"], s["branch_ratios"], rtol=1e-5)

    run = store.get(first.run_id)  # what the store holds: the curves appended, steps numbered on
    steps = 2 * (N_TRAIN // BATCH)
    assert run.state == "finished" and run.status["step"] == run.status["total_steps"] == steps
    assert len(run.metrics["loss"]) == steps and np.isfinite(run.metrics["loss"]).all()
    np.testing.assert_array_equal(run.metrics["grad_norm_step"], np.arange(steps))
    np.testing.assert_array_equal(run.metrics["branch_ratio_step"], np.arange(0, steps, 2))
    evals = run.metrics["eval_step"]
    assert evals[0] == 0 and evals[-1] == steps and (np.diff(evals) > 0).all()
    assert (np.diff(run.metrics["eval_time"]) >= 0).all()
    assert run.config.train.epochs == 2 and run.config.train.max_steps is None
    meta = json.loads((run.path / "config.json").read_text())
    assert meta["extensions"][0]["from_step"] == steps // 2 and meta["extensions"][0]["to_step"] == steps
    assert [r.id for r in store.list()] == [first.run_id, straight.run_id]  # no new run
    assert read_checkpoint(run.path / "checkpoint.safetensors").step == steps
    assert not (run.path / LOCK_FILE).exists()
    assert_same_weights(store.load_model(first.run_id), straight.model.eval())


@pytest.mark.parametrize("stop_after", [4, 7])  # inside an epoch; at an epoch's end, its successor's order drawn
def test_a_stopped_run_continues_its_epoch_exactly(data, tmp_path, stop_after):
    store = RunStore(tmp_path)
    stop = threading.Event()

    def on_progress(p):
        if p.step >= stop_after:
            stop.set()
    stopped = Trainer(config(3, flush_every=1), data=data, store=store, on_progress=on_progress,
                      stop_event=stop).run()
    assert stopped.status == "stopped" and stopped.steps == stop_after
    extended = extend_run(store, stopped.run_id, 1, data=data)
    straight = Trainer(config(3, max_steps=stop_after + 7), data=data, save=False).run()
    assert extended.steps == straight.steps == stop_after + 7
    assert_same_weights(extended.model, straight.model)
    np.testing.assert_allclose(extended.metrics["loss"], straight.metrics["loss"], rtol=1e-6)


def test_other_schedules_keep_their_last_learning_rate(data, tmp_path):
    store = RunStore(tmp_path)
    first = Trainer(config(1, schedule="step", residual=False, branch_ratio_every=0), data=data, store=store).run()
    last_lr = first.metrics["lr"][-1]
    assert last_lr == pytest.approx(0.05 * 0.01)
    extension = prepare_extension(store, first.run_id, 2, data=data)
    assert any("keep" in note for note in extension.notes)
    result = extension.run()
    assert len(result.metrics["lr"]) == 3 * 7
    np.testing.assert_allclose(result.metrics["lr"][7:], last_lr)
    assert "branch_ratios" not in result.metrics


def test_a_checkpoint_without_optimizer_state_still_extends(data, tmp_path):
    from safetensors.torch import load_file, save_file
    store = RunStore(tmp_path)
    first = Trainer(config(1), data=data, store=store).run()
    path = store.get(first.run_id).path / "checkpoint.safetensors"
    weights = {k: v for k, v in load_file(str(path)).items() if not k.startswith(TRAINING_STATE_PREFIX)}
    save_file(weights, str(path), metadata={"config": "{}"})  # as checkpoints were written before
    extension = prepare_extension(store, first.run_id, 1, data=data)
    assert any("momentum restarts" in n for n in extension.notes)
    assert any("data order" in n for n in extension.notes)
    result = extension.run()
    assert result.status == "finished" and len(result.metrics["loss"]) == 14
    assert read_checkpoint(path).has_training_state  # written in the new format now


def test_a_failed_extension_leaves_the_run_as_it_was(data, tmp_path):
    store = RunStore(tmp_path)
    first = Trainer(config(1), data=data, store=store).run()
    path = store.get(first.run_id).path
    before = {name: (path / name).read_bytes() for name in ("config.json", "metrics.safetensors",
                                                            "checkpoint.safetensors")}

    def on_progress(p):
        if p.step > 9:
            raise RuntimeError("the machine caught fire")
    with pytest.raises(RuntimeError, match="caught fire"):
        extend_run(store, first.run_id, 2, data=data, on_progress=on_progress)
    for name, content in before.items():
        assert (path / name).read_bytes() == content, name
    run = store.get(first.run_id)
    assert run.state == "finished" and run.status["step"] == 7
    assert "as it was before" in run.status["message"] and "caught fire" in run.status["message"]
    assert not (path / LOCK_FILE).exists()
    assert extend_run(store, first.run_id, 1, data=data).steps == 14  # and it extends fine afterwards


def test_a_diverged_extension_keeps_the_earlier_checkpoint(data, tmp_path):
    store = RunStore(tmp_path)
    first = Trainer(config(1), data=data, store=store).run()
    path = store.get(first.run_id).path
    checkpoint = (path / "checkpoint.safetensors").read_bytes()
    meta = json.loads((path / "config.json").read_text())
    meta["config"]["train"]["lr"] = 1e6  # a config edited by hand, to make the extension blow up
    (path / "config.json").write_text(json.dumps(meta))
    diverged = extend_run(store, first.run_id, 3, data=data)
    assert diverged.status == "diverged" and diverged.diverged_step >= 7
    assert (path / "checkpoint.safetensors").read_bytes() == checkpoint
    assert len(store.get(first.run_id).metrics["loss"]) == diverged.diverged_step + 1

    meta = json.loads((path / "config.json").read_text())
    meta["config"]["train"]["lr"] = 0.05
    (path / "config.json").write_text(json.dumps(meta))
    extension = prepare_extension(store, first.run_id, 1, data=data)
    assert extension.start == 7 and any("replaced" in n for n in extension.notes)
    again = extension.run()
    assert again.status == "finished" and again.steps == 14 and np.isfinite(again.metrics["loss"]).all()


def test_an_extension_evaluates_at_the_runs_own_cadence(data, tmp_path):
    """28 steps evaluated every 2 (a dozen per run); 7 more steps go on every 2, not at every step (a dozen of 7)."""
    store = RunStore(tmp_path)
    first = Trainer(config(4, branch_ratio_every=0), data=data, store=store).run()
    assert list(first.metrics["eval_step"][:3]) == [0, 2, 4]
    extension = prepare_extension(store, first.run_id, 1, data=data)
    assert extension.config.train.eval_every == 2
    result = extension.run()
    assert list(result.metrics["eval_step"][14:]) == [28, 30, 32, 34, 35]  # 35: a run always evaluates its end
    assert store.get(first.run_id).config.train.eval_every == 2  # recorded, so a further extension keeps it


def test_what_cannot_be_extended(data, tmp_path):
    store = RunStore(tmp_path)
    finished = Trainer(config(1), data=data, store=store).run()
    for epochs in (0, -1, float("nan"), True, "2"):
        with pytest.raises(ConfigError, match="positive number"):
            prepare_extension(store, finished.run_id, epochs, data=data)
    with pytest.raises(RunStoreError, match="no run"):
        prepare_extension(store, "20250101-000000-nothing-abcdef", 1, data=data)

    diverged = Trainer(config(5, lr=1e6), data=data, store=store).run()
    assert diverged.status == "diverged"
    with pytest.raises(RunStoreError, match="no saved weights"):
        prepare_extension(store, diverged.run_id, 1, data=data)

    status_path = store.get(finished.run_id).path / "status.json"
    status = json.loads(status_path.read_text())
    status_path.write_text(json.dumps(dict(status, status="running", pid=os.getpid())))
    with pytest.raises(RunStoreError, match="still training"):
        prepare_extension(store, finished.run_id, 1, data=data)
    status_path.write_text(json.dumps(status))

    extension = prepare_extension(store, finished.run_id, 1, data=data)
    lock = store.get(finished.run_id).path / LOCK_FILE
    lock.write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename, "time": 0}))
    with pytest.raises(RunStoreError, match="another process"):
        extension.run()
    lock.write_text(json.dumps({"pid": 2 ** 22 + 12345, "host": os.uname().nodename, "time": 0}))  # a dead one
    assert extension.run().steps == 14
    assert not lock.exists()
    with pytest.raises(RunStoreError, match="changed since"):
        extension.run()  # planned against the run as it was before that


def test_cli_extend(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from cifar_fixtures import write_python_batches
    root = Path(__file__).resolve().parents[1]
    data = write_python_batches(tmp_path / "cifar", n_train_per_class=5, n_test_per_class=3)

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "resnet_viz", "--runs", str(tmp_path / "runs"), "--data",
                               str(data), *args], cwd=root, capture_output=True, text=True, timeout=300)
    trained = cli("train", "--depth", "8", "--width", "0.25", "--epochs", "1", "--batch-size", "16",
                  "--eval-images", "20", "--device", "cpu", "--schedule", "constant", "--lr", "0.05")
    assert trained.returncode == 0, trained.stderr
    run_id = RunStore(tmp_path / "runs").list()[0].id
    extended = cli("extend", run_id, "--epochs", "2")
    assert extended.returncode == 0, extended.stderr
    assert "finished after 9 steps" in extended.stdout and run_id in extended.stdout  # 3 steps an epoch
    run = RunStore(tmp_path / "runs").get(run_id)
    assert run.status["step"] == 9 and run.config.train.epochs == 3
    for args, words in ((("extend", "20250101-000000-nothing-abcdef", "--epochs", "1"), "no run"),
                        (("extend", run_id, "--epochs", "0"), "positive number")):
        refused = cli(*args)
        assert refused.returncode == 2 and refused.stderr.startswith("error: ") and words in refused.stderr
        assert "Traceback" not in refused.stderr


def test_a_run_trained_on_a_missing_device_goes_on_with_auto(data, tmp_path):
    store = RunStore(tmp_path)
    first = Trainer(config(1), data=data, store=store).run()
    path = store.get(first.run_id).path / "config.json"
    meta = json.loads(path.read_text())
    meta["config"]["train"]["device"] = "mps" if torch.cuda.is_available() else "cuda"  # a device not here
    path.write_text(json.dumps(meta))
    extension = prepare_extension(store, first.run_id, 1, data=data)
    assert "is not here" in extension.notes[0] and extension.config.train.device == "auto"
    with pytest.raises(ConfigError, match="sees none here"):
        prepare_extension(store, first.run_id, 1, data=data, device=meta["config"]["train"]["device"])
