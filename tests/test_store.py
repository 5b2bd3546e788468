"""The run store: round trip, atomic writes, interrupted runs, corrupt directories, name sanitising, export."""
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from resnet_viz.config import ModelConfig, RunConfig, TrainConfig
from resnet_viz.errors import RunStoreError
from resnet_viz.nets.models import build_model
from resnet_viz.storage.store import RunStore, metrics_to_csv, sanitize_name, slugify

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["stem.conv", "stage1.block1.conv1", "fc"]


def fake_metrics(steps=6, evals=(0, 3, 6)):
    rng = np.random.default_rng(0)
    return {
        "step": np.arange(steps),
        "loss": np.linspace(2.3, 1.5, steps, dtype=np.float32),
        "batch_error": np.linspace(0.9, 0.5, steps, dtype=np.float32),
        "lr": np.full(steps, 0.1, np.float32),
        "grad_norm_step": np.arange(steps),
        "grad_norms": rng.random((steps, len(LAYERS)), dtype=np.float32),
        "eval_step": np.array(evals),
        "train_loss": np.linspace(2.3, 1.4, len(evals), dtype=np.float32),
        "train_error": np.linspace(0.9, 0.4, len(evals), dtype=np.float32),
        "test_loss": np.linspace(2.3, 1.6, len(evals), dtype=np.float32),
        "test_error": np.linspace(0.9, 0.55, len(evals), dtype=np.float32),
        "eval_time": np.linspace(0, 5, len(evals), dtype=np.float32),
    }


def config(name=None, depth=8):
    return RunConfig(model=ModelConfig(depth=depth, residual=False), train=TrainConfig(epochs=1), name=name)


def test_round_trip(tmp_path):
    store = RunStore(tmp_path)
    writer = store.create(config("my run"))
    metrics = fake_metrics()
    writer.write_metrics(metrics, LAYERS)
    model = build_model(config().model)
    writer.write_checkpoint(model)
    writer.set_status("finished", step=6, total_steps=6)

    [run] = store.list()
    assert run.id == writer.id and run.name == "my run" and run.state == "finished"
    assert run.config.model == config().model
    assert run.layer_names == LAYERS
    for k, v in metrics.items():
        np.testing.assert_array_equal(run.metrics[k], v)
    s = run.summary()
    assert s["steps_done"] == 6 and s["final_test_error"] == pytest.approx(0.55)
    assert s["final_train_loss"] == pytest.approx(1.4) and s["label"] == "plain-8"
    json.dumps(s)  # JSON-ready
    loaded = store.load_model(run.id)
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        torch.testing.assert_close(a, b)
    assert not any(p.suffix == ".pt" for p in run.path.iterdir())  # safetensors only


def test_writes_are_atomic(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    writer = store.create(config())
    writer.write_metrics(fake_metrics(3, (0, 3)), LAYERS)

    import safetensors.numpy

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.numpy, "save_file", crash)
    with pytest.raises(OSError):
        writer.write_metrics(fake_metrics(6), LAYERS)
    run = store.get(writer.id)
    assert len(run.metrics["loss"]) == 3  # the previous, complete file is intact
    assert [p.name for p in run.path.iterdir() if p.name.endswith(".tmp")] == []


def test_dead_writer_shows_interrupted_with_metrics_kept(tmp_path):
    store = RunStore(tmp_path)
    script = ("import numpy as np\n"
              "from resnet_viz.storage.store import RunStore\n"
              "from resnet_viz.config import RunConfig, ModelConfig\n"
              f"w = RunStore({str(tmp_path)!r}).create(RunConfig(model=ModelConfig(depth=8)))\n"
              "w.write_metrics({'loss': np.ones(4, np.float32)}, ['fc'])\n"
              "print(w.id)\n")
    run_id = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()  # `python -c` imports from its working directory
    run = store.get(run_id)
    assert run.state == "interrupted" and "stopped before it finished" in run.status["message"]
    assert len(run.metrics["loss"]) == 4
    live = store.create(config())  # this process is alive: still running
    assert store.get(live.id).state == "running"


def test_corrupt_and_foreign_directories_are_skipped(tmp_path):
    store = RunStore(tmp_path)
    good = store.create(config())
    good.set_status("finished")
    (tmp_path / "holiday-photos").mkdir()
    (tmp_path / "holiday-photos" / "img.jpg").write_bytes(b"\xff\xd8")
    broken = tmp_path / "20200101-000000-broken-abc123"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    (broken / "status.json").write_text("{}")
    (tmp_path / "stray-file.txt").write_text("hello")
    with pytest.warns(UserWarning, match="Skipping"):
        runs = store.list()
    assert [r.id for r in runs] == [good.id]
    garbled = store.create(config())
    (garbled.path / "metrics.safetensors").write_bytes(b"garbage")
    with pytest.raises(RunStoreError, match="metrics"):
        store.get(garbled.id).metrics


def test_names_are_sanitised(tmp_path):
    store = RunStore(tmp_path)
    writer = store.create(config("../../etc/passwd\n\x00evil"))
    assert writer.path.parent == tmp_path
    assert "/" not in writer.id and ".." not in writer.id
    assert store.get(writer.id).name == "../../etc/passwdevil"
    assert slugify("../..") == "run" and slugify("a b/c") == "a-b-c"
    assert sanitize_name("   ") == "run" and len(sanitize_name("x" * 500)) == 80
    for bad in ("../x", "/etc", "a/b", "", ".hidden"):
        with pytest.raises(RunStoreError):
            store.get(bad)
    with pytest.raises(RunStoreError, match="no run"):
        store.get("20990101-000000-missing-000000")


def test_delete(tmp_path):
    store = RunStore(tmp_path)
    a, b = store.create(config("a")), store.create(config("b"))
    store.delete(a.id)
    assert [r.id for r in store.list()] == [b.id]
    with pytest.raises(RunStoreError):
        store.delete(a.id)


def test_export_csv_and_json(tmp_path):
    store = RunStore(tmp_path)
    writer = store.create(config())
    writer.write_metrics(fake_metrics(), LAYERS)
    writer.set_status("finished", step=6)
    rows = list(csv.DictReader(io.StringIO(store.export(writer.id, "csv"))))
    assert len(rows) == 7  # steps 0..5 plus the final evaluation at step 6
    assert rows[0]["loss"] == "2.3" and rows[0]["test_error"] == "0.9" and rows[1]["test_error"] == ""
    assert float(rows[2]["grad_norm:stage1.block1.conv1"]) == pytest.approx(fake_metrics()["grad_norms"][2, 1])
    data = json.loads(store.export(writer.id, "json"))
    assert data["layer_names"] == LAYERS and len(data["metrics"]["loss"]) == 6
    with pytest.raises(RunStoreError):
        store.export(writer.id, "xml")
    assert metrics_to_csv({}, []).startswith("step,")


def test_listing_a_missing_store_is_empty(tmp_path):
    assert RunStore(tmp_path / "nope").list() == []
