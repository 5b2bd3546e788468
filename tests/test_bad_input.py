"""Issue 9: bad input and damaged stores, through the library. Each case must end in one clear sentence (a
ResnetVizError) and lose nothing; the CLI and app halves of the same cases are in test_cli.py and
test_app_pages.py."""
import json
import math
import os
import pickle
import re
import socket
import struct
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from cifar_fixtures import write_python_batches
from resnet_viz.storage import store as store_module
from resnet_viz.storage import writer as writer_module
from resnet_viz.config import MAX_CIFAR_DEPTH, ModelConfig, RunConfig, TrainConfig
from resnet_viz.datasets.cifar10 import load_cifar10
from resnet_viz.errors import ConfigError, DataError, ImageError, RunStoreError
from resnet_viz.analyses.gradcam import MAX_UPLOAD_BYTES, decode_cost, load_image
from resnet_viz.execution.jobs import JobQueue
from resnet_viz.nets.summary import check_fits, model_summary
from resnet_viz.storage.store import RunStore
from resnet_viz.training.metric_log import check_recording_fits
from resnet_viz.training.train_one import train

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["stem.conv", "stage1.block1.conv1", "fc"]


def fake_metrics(steps=6):
    return {"step": np.arange(steps), "loss": np.linspace(2.3, 1.5, steps, dtype=np.float32),
            "batch_error": np.full(steps, 0.5, np.float32), "lr": np.full(steps, 0.1, np.float32),
            "grad_norm_step": np.arange(steps), "grad_norms": np.ones((steps, len(LAYERS)), np.float32),
            "eval_step": np.array([0, steps]), "train_loss": np.array([2.3, np.nan], np.float32),
            "train_error": np.array([0.9, 0.4], np.float32), "test_loss": np.array([2.3, 1.6], np.float32),
            "test_error": np.array([0.9, 0.5], np.float32), "eval_time": np.array([0.0, 1.0], np.float32)}


def finished_run(store: RunStore, name: str) -> str:
    writer = store.create(RunConfig(model=ModelConfig(depth=8, residual=False), train=TrainConfig(epochs=1),
                                    name=name))
    writer.write_metrics(fake_metrics(), LAYERS)
    writer.set_status("finished", step=6, total_steps=6)
    return writer.id


# ------------------------------------------------------------------------------------ 1, 7, …: typed numbers ----
def test_absurd_depth_is_refused_at_once():
    """1: depth 1,000,000,004 is a valid 6n+2, and sizing it grew memory until the process was killed."""
    start = time.perf_counter()
    for call in (lambda c: c.validate(), model_summary, lambda c: check_fits(c, 128, torch.device("cpu"))):
        with pytest.raises(ConfigError, match="2,000"):
            call(ModelConfig(depth=1_000_000_004))
    assert time.perf_counter() - start < 5
    ModelConfig(depth=MAX_CIFAR_DEPTH - (MAX_CIFAR_DEPTH - 2) % 6).validate()  # the deepest allowed still is


@pytest.mark.parametrize("bad", [
    dict(epochs=float("nan")), dict(epochs=float("inf")), dict(epochs=1e9), dict(epochs="many"),  # 7
    dict(weight_decay=float("nan")), dict(weight_decay=float("inf")), dict(weight_decay=-1),
    dict(lr=float("nan")), dict(lr=float("inf")), dict(lr="0.1"), dict(momentum=float("nan")),
    dict(batch_size=2.5), dict(batch_size=True), dict(subset=100.5), dict(subset=5), dict(seed=-1),
    dict(seed=2**70), dict(seed=1.5), dict(warmup_steps=-1), dict(warmup_steps=0.5), dict(eval_every=None),
    dict(eval_images=1e9), dict(max_steps=0), dict(max_steps=2.5), dict(grad_norm_every=0),
    dict(flush_every=10**12), dict(branch_ratio_every=-3), dict(record_grad_norms="no"),
    dict(schedule=["step"]), dict(device=None),
])
def test_every_training_number_is_checked(bad):
    with pytest.raises(ConfigError):
        TrainConfig(**bad).validate()


@pytest.mark.parametrize("bad", [dict(depth="20"), dict(depth=20.0), dict(width="x"), dict(width=None),
                                 dict(num_classes=10**9), dict(num_classes=2.5), dict(residual="yes"),
                                 dict(batchnorm=None), dict(family=None), dict(shortcut=["A"])])
def test_every_model_field_is_checked(bad):
    with pytest.raises(ConfigError):
        ModelConfig(**bad).validate()


@pytest.mark.parametrize("d", [None, [], "config", {"model": "resnet"}, {"train": [1]}, {"name": 5},
                               {"data_dir": ["a"]}])
def test_config_of_the_wrong_shape_is_a_config_error(d):
    with pytest.raises(ConfigError):
        RunConfig.from_dict(d).validate()


@pytest.mark.parametrize("size", [-5, 0, 10**6, 2.5])
def test_summary_input_size_is_checked(size):
    """10: `summary --input-size -5`."""
    with pytest.raises(ConfigError, match="input size"):
        model_summary(ModelConfig(depth=8), size)


def test_metric_arrays_must_fit_in_memory():
    """--epochs 10000 --batch-size 1: the per-step arrays are allocated up front."""
    with pytest.raises(ConfigError, match="GiB"):
        check_recording_fits(500_000_000, 21, 1, True)
    assert check_recording_fits(1000, 21, 1, True) == 4 * (3 * 1000 + 1000 * 21)


# ------------------------------------------------------------------------------------- 2: one bad run folder ----
def _edit_json(path: Path, change) -> None:
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


def _config_json(change):
    return lambda run: _edit_json(run / "config.json", change)


def _status_json(change):
    return lambda run: _edit_json(run / "status.json", change)


def _metrics(change):
    def edit(run):
        from safetensors.numpy import save_file
        m, meta = fake_metrics(), {"layer_names": json.dumps(LAYERS)}
        change(m, meta)
        save_file(m, str(run / "metrics.safetensors"), metadata=meta)
    return edit


BAD_RUNS = {
    "config null": _config_json(lambda c: c.update(config=None)),
    "status a list": _status_json(lambda s: s.update(status=["finished"])),
    "created text": _config_json(lambda c: c.update(created="yesterday")),
    "pid 2^70": _status_json(lambda s: s.update(status="running", pid=2**70)),
    "width x": _config_json(lambda c: c["config"]["model"].update(width="x")),
    "step many": _status_json(lambda s: s.update(step="many")),
    # siblings: every other field read from disk
    "config.json a list": lambda run: (run / "config.json").write_text("[1, 2]"),
    "status.json a number": lambda run: (run / "status.json").write_text("7"),
    "status.json not UTF-8": lambda run: (run / "status.json").write_bytes(b'{"status": "\xff"}'),
    "config.json nested 100000 deep": lambda run: (run / "config.json").write_text("[" * 100_000 + "]" * 100_000),
    "created 1e300": _config_json(lambda c: c.update(created=1e300)),
    "created NaN": lambda run: (run / "config.json").write_text(
        (run / "config.json").read_text().replace('"created": ', '"created": NaN, "was": ')),
    "name a number": _config_json(lambda c: c.update(name=5)),
    "depth a string": _config_json(lambda c: c["config"]["model"].update(depth="20")),
    "depth 1000000004": _config_json(lambda c: c["config"]["model"].update(depth=1_000_000_004)),
    "epochs inf": lambda run: (run / "config.json").write_text(
        (run / "config.json").read_text().replace('"epochs": 1', '"epochs": Infinity')),
    "train a list": _config_json(lambda c: c["config"].update(train=[1])),
    "heartbeat text": _status_json(lambda s: s.update(heartbeat="now")),
    "updated huge": _status_json(lambda s: s.update(updated=1e308)),
    "total_steps negative": _status_json(lambda s: s.update(total_steps=-1)),
    "message a dict": _status_json(lambda s: s.update(message={"a": 1})),
    "seconds NaN": lambda run: (run / "status.json").write_text(
        (run / "status.json").read_text().replace('"status": ', '"seconds": NaN, "status": ')),
    "layer names not a list": _metrics(lambda m, meta: meta.update(layer_names='"fc"')),
    "layer names not JSON": _metrics(lambda m, meta: meta.update(layer_names="[oops")),
    "grad norms for other layers": _metrics(lambda m, meta: m.update(grad_norms=np.ones((6, 7), np.float32))),
    "grad norms 1-D": _metrics(lambda m, meta: m.update(grad_norms=np.ones(6, np.float32))),
    "eval arrays of different lengths": _metrics(lambda m, meta: m.update(test_error=np.ones(5, np.float32))),
    "eval steps as floats": _metrics(lambda m, meta: m.update(eval_step=np.array([0.0, np.nan]))),
    "loss 2-D": _metrics(lambda m, meta: m.update(loss=np.ones((6, 2), np.float32))),
    "grad norm steps without norms": _metrics(lambda m, meta: m.pop("grad_norms")),
    "evaluations without test errors": _metrics(lambda m, meta: m.pop("test_error")),
    "complex numbers in the metrics": _metrics(lambda m, meta: m.update(lr=np.ones(6, np.complex64))),
    "metrics truncated": lambda run: (run / "metrics.safetensors").write_bytes(
        (run / "metrics.safetensors").read_bytes()[:300]),
}


@pytest.mark.parametrize("damage", list(BAD_RUNS))
def test_one_bad_run_hides_only_itself(damage, tmp_path):
    store = RunStore(tmp_path)
    good = finished_run(store, "good")
    bad = finished_run(store, "bad")
    BAD_RUNS[damage](tmp_path / bad)
    before = {p: p.read_bytes() for p in (tmp_path / bad).iterdir()}

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = {r.id: r for r in store.list()}
    assert good in runs
    if bad in runs:  # the folder itself reads; what is damaged is its metrics file
        with pytest.raises(RunStoreError, match=re.escape(bad)):
            runs[bad].metrics
    else:
        assert [str(w.message) for w in caught if bad in str(w.message)]  # skipped, with a warning naming it
        with pytest.raises(RunStoreError, match=re.escape(bad)):
            store.get(bad)
    with pytest.raises(RunStoreError, match=re.escape(bad)):
        store.export(bad, "csv")
    summary = store.get(good).summary()
    assert summary["steps_done"] == 6 and store.export(good, "csv").startswith("step,")
    assert {p: p.read_bytes() for p in (tmp_path / bad).iterdir()} == before  # reading lost nothing


def test_a_copied_run_folder_is_its_own_run(tmp_path):
    """The folder's name is the id: a copy whose config.json still names the original must not act on it."""
    import shutil
    store = RunStore(tmp_path)
    original = finished_run(store, "original")
    shutil.copytree(tmp_path / original, tmp_path / "copy-of-it")
    assert sorted(r.id for r in store.list()) == sorted([original, "copy-of-it"])
    store.delete("copy-of-it")
    assert [r.id for r in store.list()] == [original]


def test_store_that_is_a_file_or_unreadable_is_one_sentence(tmp_path, unwritable_dir):
    (tmp_path / "file").write_text("x")
    for call in (RunStore(tmp_path / "file").list, RunStore(tmp_path / "file").check_writable,
                 RunStore(unwritable_dir).check_writable, RunStore(unwritable_dir / "runs").check_writable):
        with pytest.raises(RunStoreError):
            call()
    RunStore(tmp_path / "new" / "runs").check_writable()  # a missing folder is created
    assert (tmp_path / "new" / "runs").is_dir() and list((tmp_path / "new" / "runs").iterdir()) == []


# -------------------------------------------------------------------------------------- heartbeat, JSON ----
def test_a_run_written_elsewhere_is_interrupted_once_its_heartbeat_stops(tmp_path):
    store = RunStore(tmp_path)
    run_id = finished_run(store, "remote")
    status = tmp_path / run_id / "status.json"

    def written(seconds_ago, **more):
        fields = {"host": "another-host", "pid": 12345, **more}
        _edit_json(status, lambda s: s.update(status="running", heartbeat=time.time() - seconds_ago, **fields))
        return store.get(run_id).state

    assert written(5) == "running"
    assert written(store_module.HEARTBEAT_STALE_S + 30) == "interrupted"
    assert written(store_module.HEARTBEAT_STALE_S + 30, host=socket.gethostname(), pid=os.getpid()) == \
        "interrupted"  # this host, a live pid (recycled, or a hung writer), but no heartbeat for minutes
    # Runs written before heartbeats existed keep the old, long timeout.
    _edit_json(status, lambda s: s.pop("heartbeat"))
    _edit_json(status, lambda s: s.update(updated=time.time() - 600))
    assert store.get(run_id).state == "running"


def test_the_writer_beats_while_running_and_stops_after(tmp_path, monkeypatch):
    monkeypatch.setattr(writer_module, "HEARTBEAT_S", 0.05)
    writer = RunStore(tmp_path).create(RunConfig(model=ModelConfig(depth=8)))
    status = writer.path / "status.json"
    first = json.loads(status.read_text())["heartbeat"]
    deadline = time.time() + 10
    while json.loads(status.read_text())["heartbeat"] == first and time.time() < deadline:
        time.sleep(0.05)
    assert json.loads(status.read_text())["heartbeat"] > first
    writer.set_status("finished")
    time.sleep(0.2)
    final = status.read_text()
    time.sleep(0.3)
    assert status.read_text() == final and json.loads(final)["status"] == "finished"


def test_json_export_is_strict(tmp_path):
    """NaN in the metrics becomes null: strict parsers reject the bare word NaN."""
    store = RunStore(tmp_path)
    run_id = finished_run(store, "nan")

    def refuse(word):
        raise ValueError(f"non-standard JSON: {word}")

    data = json.loads(store.export(run_id, "json"), parse_constant=refuse)
    assert data["metrics"]["train_loss"] == [pytest.approx(2.3), None]
    assert data["metrics"]["step"] == list(range(6))
    assert store_module.strict_json({"x": [float("inf"), np.float32("nan"), 1.5]}) == '{"x": [null, null, 1.5]}'


# --------------------------------------------------------------------------------- 4: crafted CIFAR pickles ----
class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_a_crafted_batch_file_is_refused_without_running_it(tmp_path, protocol):
    root = write_python_batches(tmp_path / "cifar", 2, 1)
    marker = tmp_path / "code-ran"
    batch = root / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(pickle.dumps({b"data": RunsCode(str(marker)), b"labels": [0]}, protocol=protocol))
    with pytest.raises(DataError, match="refused") as info:
        load_cifar10(root, download=False, progress=False)
    assert "data_batch_1" in str(info.value) and "mkdir" in str(info.value)
    assert not marker.exists()


def test_the_real_files_module_names_are_admitted(tmp_path):
    """CIFAR-10's own files were pickled by numpy 1.x (numpy.core.multiarray) at protocol 2; re-pickles by numpy 2
    say numpy._core. Both load, as do protocol 5 pickles."""
    root = write_python_batches(tmp_path / "cifar", 3, 2)
    folder = root / "cifar-10-batches-py"
    reference = load_cifar10(root, download=False, progress=False)
    entry = pickle.loads((folder / "data_batch_1").read_bytes())
    old_style = pickle.dumps(entry, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"cnumpy.core.multiarray\n_reconstruct" in old_style
    (folder / "data_batch_1").write_bytes(old_style)
    (folder / "data_batch_2").write_bytes(pickle.dumps(pickle.loads((folder / "data_batch_2").read_bytes()),
                                                       protocol=5))
    data = load_cifar10(folder, download=False, progress=False)
    assert torch.equal(data.train_images, reference.train_images)
    assert torch.equal(data.train_labels, reference.train_labels)


# --------------------------------------------------------------------------------- 6: silent divergence ----
def tiny_config(**train) -> RunConfig:
    defaults = dict(epochs=2, batch_size=32, eval_images=20, device="cpu", flush_every=4, seed=3)
    return RunConfig(model=ModelConfig(depth=8, width=0.5), train=TrainConfig(**{**defaults, **train}))


@pytest.mark.parametrize("steps", [3, 6])
def test_nan_evaluation_loss_is_divergence_not_a_finished_run(tiny_data, tmp_path, steps):
    store = RunStore(tmp_path)
    result = train(tiny_config(lr=1e4, max_steps=steps, schedule="constant"), data=tiny_data, store=store)
    m = result.metrics
    assert np.isfinite(m["loss"]).all()  # the batch losses never said so
    assert not all(math.isfinite(v) for v in m["test_loss"])
    assert result.status == "diverged" and result.steps == int(m["eval_step"][-1]) == result.diverged_step + 1
    run = store.get(result.run_id)
    assert run.state == "diverged" and not run.has_checkpoint
    assert "evaluation" in run.status["message"] and "diverged" in run.status["message"]


def test_a_subset_larger_than_the_data_is_said(tiny_data):
    with pytest.warns(UserWarning, match="only 200"):
        result = train(tiny_config(subset=5000, max_steps=1), data=tiny_data, save=False)
    assert result.status == "finished"


# ------------------------------------------------------------------------------------- the app's job queue ----
def test_the_queue_refuses_what_would_fail_after_loading_data(tmp_path, unwritable_dir):
    queue = JobQueue()
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            queue.submit([tiny_config(device="cuda")], owner="me", runs_dir=str(tmp_path))
    with pytest.raises(RunStoreError, match="cannot be saved"):
        queue.submit([tiny_config()], owner="me", runs_dir=str(unwritable_dir))
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(RunStoreError, match="not a folder"):
        queue.submit([tiny_config()], owner="me", runs_dir=str(tmp_path / "a-file"))
    with pytest.raises(ConfigError, match="2,000"):
        queue.submit([RunConfig(model=ModelConfig(depth=1_000_000_004))], owner="me", runs_dir=str(tmp_path))
    assert queue.jobs() == []


# --------------------------------------------------------------------------------------------- 9: uploads ----
def test_streamlit_reads_the_upload_limit_from_the_repository():
    """Without server.maxUploadSize Streamlit takes 200 MB into memory before the page's own 20 MB check."""
    script = ("from streamlit import config; config.get_config_options(force_reparse=True); "
              "print(config.get_option('server.maxUploadSize'))")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=True).stdout.split()[-1]
    assert int(out) * 2**20 == MAX_UPLOAD_BYTES


def png_header(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes = b"") -> bytes:
    """A PNG with this header; its pixel data (rows, zlib-compressed) may be far shorter than the header claims."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9))
            + chunk(b"IEND", b""))


def test_decoded_size_is_bounded_before_decoding():
    """A ~300 KB 16-bit RGBA PNG of 40 megapixels: under the pixel limit, but ~0.9 GB to decode. Refused from its
    header, in well under a second."""
    bomb = png_header(8000, 5000, 16, 6)
    start = time.perf_counter()
    with pytest.raises(ImageError, match="MB of memory"):
        load_image(bomb)
    assert time.perf_counter() - start < 1
    assert decode_cost("RGBA", 8000, 5000) > 256 * 2**20 > decode_cost("RGB", 8000, 5000)
    assert decode_cost("L", 8000, 5000) < decode_cost("RGB", 8000, 5000) < decode_cost("RGBA", 8000, 5000)


def test_a_large_sixteen_bit_rgba_png_decodes_within_its_estimate(tmp_path):
    """What is admitted costs what decode_cost says: shrinking comes before any full-size conversion."""
    width, height = 3000, 2000
    # One random row repeated: compresses to a small file (like a real bomb), decodes to 48 MB of RGBA.
    row = b"\x00" + np.random.default_rng(0).integers(0, 65535, width * 4).astype(">u2").tobytes()
    path = tmp_path / "big16.png"
    path.write_bytes(png_header(width, height, 16, 6, row * height))
    script = ("import resource, sys, torch\nfrom resnet_viz.analyses.gradcam import load_image\n"
              "raw = open(sys.argv[1], 'rb').read()\n"
              "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
              "assert load_image(raw).shape == (3, 32, 32)\n"
              "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)\n")
    grew = int(subprocess.run([sys.executable, "-c", script, str(path)], cwd=ROOT, capture_output=True, text=True,
                              timeout=300, check=True).stdout.split()[-1])
    assert grew < 1.3 * decode_cost("RGBA", width, height)
