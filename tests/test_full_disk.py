"""A disk that fills (or a folder that is read-only) under every writer: training, extending, exporting, the status
heartbeat, the caches. Each says so in one sentence, keeps what was saved before, and leaves other runs alone.
The full disk is injected (tests/disk_faults.py); unpacking and packing are tested in test_packs.py."""
import errno
import json
import shutil
import threading
import time
from pathlib import Path

import pytest
import torch

from cifar_fixtures import write_image_folder
from disk_faults import NO_SPACE, FullDisk
from resnet_viz.training import budget, trainer as trainer_module
from resnet_viz.commands import cli
from resnet_viz.storage import store as store_module
from resnet_viz.storage import writer as writer_module
from resnet_viz.config import ModelConfig, RunConfig, TrainConfig
from resnet_viz.datasets.cifar10 import load_cifar10
from resnet_viz.errors import RunStoreError, StorageError
from resnet_viz.training.extend import extend_run
from resnet_viz.storage.files import storage_error
from resnet_viz.storage.store import RunStore
from resnet_viz.training.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config(**train) -> RunConfig:
    return RunConfig(model=ModelConfig(depth=8, width=0.25),
                     train=TrainConfig(**{"epochs": 2, "batch_size": 20, "max_steps": 12, "flush_every": 2,
                                          "eval_images": 20, "device": "cpu", "precision": "fp32", "threads": 1,
                                          **train}))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def hidden(folder: Path) -> list[str]:
    """Temporary files a failed write could leave behind (they all start with a dot)."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def train_until_the_disk_fills(store, data, disk, at_step: int):
    """Train a tiny run, saving at every step, with the disk full from `at_step` on; returns (trainer, error)."""
    def on_progress(p):
        if p.step >= at_step:
            disk.on = True
    run = Trainer(tiny_config(), data=data, store=store, on_progress=on_progress)
    with pytest.raises(StorageError) as caught:
        run.run()
    disk.on = False
    return run, caught.value


def test_the_message_names_the_folder_and_the_room_needed(tmp_path):
    full = storage_error(OSError(errno.ENOSPC, NO_SPACE), tmp_path, "the weights of run x", 3 << 20, kept=True)
    assert str(full).startswith(f"The disk holding {tmp_path} is full: the weights of run x could not be saved (it "
                                f"needs about 3.0 MB, ")
    assert "is free there); the copy saved before is kept." in str(full) and full.errno == errno.ENOSPC
    read_only = storage_error(OSError(errno.EROFS, "Read-only file system"), tmp_path, "the export a.csv")
    assert str(read_only) == f"The export a.csv could not be saved: {tmp_path} cannot be written to (Read-only file " \
                             f"system)."
    assert isinstance(full, OSError)  # code that copes with a failed write (a heartbeat, a cache) still does


def test_a_run_whose_disk_fills_fails_in_one_sentence_and_keeps_its_last_save(tmp_path, tiny_data, monkeypatch):
    monkeypatch.setattr(trainer_module, "SAVE_SECONDS", 0.0)  # save at every step
    store = RunStore(tmp_path / "runs")
    other = Trainer(tiny_config(max_steps=4), data=tiny_data, store=store).run()
    others = snapshot(store.root / other.run_id)
    disk = FullDisk(monkeypatch, json=False)  # a status of a few hundred bytes still fits; the curves do not
    run, error = train_until_the_disk_fills(store, tiny_data, disk, at_step=6)
    message = str(error)
    path = store.root / run.writer.id
    assert message.startswith(f"The disk holding {path} is full: the curves of run {run.writer.id} could not be saved "
                              f"(it needs about "), message
    assert "\n" not in message and "copy saved before is kept" in message
    saved = store.get(run.writer.id)
    assert saved.state == "failed" and saved.status["message"] == message
    assert 0 < saved.status["step"] < 12 and len(saved.metrics["loss"]) == saved.status["step"]  # the last good save
    assert hidden(path) == [] and snapshot(store.root / other.run_id) == others


def test_when_not_even_the_status_fits_the_last_save_still_reads(tmp_path, tiny_data, monkeypatch):
    monkeypatch.setattr(trainer_module, "SAVE_SECONDS", 0.0)
    store = RunStore(tmp_path / "runs")
    disk = FullDisk(monkeypatch)
    run, error = train_until_the_disk_fills(store, tiny_data, disk, at_step=6)
    assert disk.failed >= 2  # the curves, then the status that would have said "failed"
    assert run.writer._beating is None  # no heartbeat goes on calling the run alive
    status = json.loads((store.root / run.writer.id / "status.json").read_text())
    assert status["status"] == "running"  # as last saved ...
    monkeypatch.setattr(store_module, "HEARTBEAT_STALE_S", 0.0)  # ... and once its heartbeat is old:
    saved = store.get(run.writer.id)
    assert saved.state == "interrupted" and len(saved.metrics["loss"]) == status["step"] > 0
    assert hidden(saved.path) == []


def test_cli_train_on_a_full_disk_prints_one_sentence(tmp_path, data_dir, monkeypatch, capsys):
    runs = tmp_path / "runs"
    disk = FullDisk(monkeypatch, json=False)
    disk.on = True
    rc = cli.main(["--runs", str(runs), "--data", str(data_dir), "train", "--depth", "8", "--width", "0.25",
                   "--epochs", "1", "--batch-size", "30", "--eval-images", "20", "--device", "cpu", "--precision",
                   "fp32", "--threads", "1", "--no-download"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and "SafetensorError" not in err, err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert line.startswith(f"error: The disk holding {runs}") and " is full: the curves of run " in line, line
    (run,) = RunStore(runs).list()
    assert run.state == "failed" and run.status["message"] == line[len("error: "):]


def test_extending_onto_a_full_disk_puts_the_run_back(tmp_path, trained_store, data_dir, monkeypatch):
    root = Path(shutil.copytree(trained_store, tmp_path / "runs"))
    store = RunStore(root)
    run_id, other_id = [r.id for r in store.list()]
    before, others = snapshot(root / run_id), snapshot(root / other_id)
    data = load_cifar10(data_dir, download=False, progress=False)
    disk = FullDisk(monkeypatch)
    disk.on = True  # not even the extended config can be written: nothing changes
    with pytest.raises(StorageError, match=f"is full: the config of run {run_id} could not be saved"):
        extend_run(store, run_id, 1, data=data, device="cpu")
    assert snapshot(root / run_id) == before

    disk.on = False
    disk = FullDisk(monkeypatch, json=False)
    disk.on = True  # the curves cannot be saved: the run is put back as it was
    with pytest.raises(StorageError, match=f"is full: the curves of run {run_id}") as caught:
        extend_run(store, run_id, 1, data=data, device="cpu")
    after = snapshot(root / run_id)
    status = json.loads(after.pop("status.json"))
    assert after == {k: v for k, v in before.items() if k != "status.json"}  # config, curves, checkpoint
    assert status["status"] == json.loads(before["status.json"])["status"]
    assert status["message"].startswith("Training 1 epoch more did not complete") and str(caught.value) in \
        status["message"]
    assert snapshot(root / other_id) == others and hidden(root / run_id) == []


def test_export_onto_a_full_disk_keeps_the_earlier_file(tmp_path, trained_store, monkeypatch, capsys):
    out = tmp_path / "curves.csv"
    out.write_text("an earlier export\n")
    run_id = RunStore(trained_store).list()[0].id
    FullDisk(monkeypatch).on = True
    rc = cli.main(["--runs", str(trained_store), "export", run_id, "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(f"error: The disk holding {tmp_path} is full: the export curves.csv could not "
                                      f"be saved (it needs about ") and err.count("\n") == 1, err
    assert out.read_text() == "an earlier export\n" and [p.name for p in tmp_path.iterdir()] == ["curves.csv"]


def test_the_heartbeat_outlasts_a_full_disk_and_stops_with_the_run(tmp_path, monkeypatch):
    monkeypatch.setattr(writer_module, "HEARTBEAT_S", 0.02)
    writer = RunStore(tmp_path / "runs").create(tiny_config())
    beating = [t for t in threading.enumerate() if t.name == f"heartbeat-{writer.id}"]
    disk = FullDisk(monkeypatch)
    disk.on = True
    assert eventually(lambda: disk.failed >= 3) and beating[0].is_alive()  # it kept trying
    disk.on = False
    stamp = time.time()
    assert eventually(lambda: json.loads((writer.path / "status.json").read_text())["heartbeat"] > stamp)
    disk.on = True
    with pytest.raises(StorageError, match="the status of run"):
        writer.set_status("stopped")
    beating[0].join(timeout=5)
    assert not beating[0].is_alive() and hidden(writer.path) == []


def eventually(condition, timeout: float = 20.0) -> bool:
    """Whether `condition()` comes true within `timeout` seconds (a busy machine schedules threads late)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_no_half_made_run_on_a_full_disk(tmp_path, monkeypatch):
    store = RunStore(tmp_path / "runs")
    store.check_writable()
    FullDisk(monkeypatch).on = True
    with pytest.raises(StorageError, match=f"The disk holding {store.root}/.* is full: the new run"):
        store.create(tiny_config())
    assert list(store.root.iterdir()) == []


def test_caches_that_cannot_be_written_are_skipped_with_a_warning(tmp_path, monkeypatch, unwritable_dir):
    folder = write_image_folder(tmp_path / "images", n_train_per_class=2, n_test_per_class=1)
    cache = tmp_path / "cache"
    monkeypatch.setenv("RESNET_VIZ_CACHE", str(cache))
    disk = FullDisk(monkeypatch)
    disk.on = True
    with pytest.warns(UserWarning, match="The decoded images .* could not be cached in .*No space left"):
        data = load_cifar10(folder, download=False, progress=False)
    assert len(data.train_labels) == 20 and list(cache.iterdir()) == []  # loaded all the same; no torn file

    def full_write_text(path, text, *args, **kwargs):
        Path.write_bytes(path, text.encode()[:10])
        raise OSError(errno.ENOSPC, NO_SPACE)
    monkeypatch.setattr(Path, "write_text", full_write_text)
    speed = budget.Speed(0.1, 1e-4, "fp32", 1)
    with pytest.warns(UserWarning, match="The measured step times could not be cached .*No space left"):
        budget.record_observed(ModelConfig(depth=8), 32, torch.device("cpu"), speed)
    assert list(cache.iterdir()) == []
    monkeypatch.undo()

    monkeypatch.setenv("RESNET_VIZ_CACHE", str(unwritable_dir / "cache"))
    with pytest.warns(UserWarning, match="The measured step times could not be cached"):
        budget.record_observed(ModelConfig(depth=8), 32, torch.device("cpu"), speed)
    with pytest.warns(UserWarning, match="The decoded images .* could not be cached"):
        load_cifar10(write_image_folder(tmp_path / "more", n_train_per_class=2, n_test_per_class=1),
                     download=False, progress=False)


def test_deleting_from_a_read_only_store_is_a_sentence(trained_store, monkeypatch):
    store = RunStore(trained_store)
    run_id = store.list()[0].id

    def read_only(src, dst):
        raise OSError(errno.EROFS, "Read-only file system")
    monkeypatch.setattr(store_module.os, "replace", read_only)
    with pytest.raises(RunStoreError, match=f"Run {run_id} cannot be deleted: .* cannot be written to \\(Read-only"):
        store.delete(run_id)
    monkeypatch.undo()
    assert store.get(run_id).has_checkpoint
