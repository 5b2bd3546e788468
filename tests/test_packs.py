"""Lecture packs: runs survive the round trip; unpacking never overwrites and turns away every kind of bad zip."""
import io
import json
import os
import pickle
import re
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from cifar_fixtures import make_images
from resnet_viz.config import ModelConfig, RunConfig, TrainConfig
from resnet_viz.datasets.cifar10 import Cifar10Tensors
from resnet_viz.errors import PackError, RunStoreError
from resnet_viz.storage.packs import MANIFEST, PackLimits, pack_bytes, pack_runs, unpack
from resnet_viz.storage.store import RunStore
from resnet_viz.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> RunStore:
    """A store with a plain and a residual tiny net, each trained one short epoch."""
    x, y = make_images(8, seed=0)
    tx, ty = make_images(3, seed=1)

    def nchw(a):
        return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))
    data = Cifar10Tensors(nchw(x), torch.from_numpy(y), nchw(tx), torch.from_numpy(ty), tuple("0123456789"), "tiny")
    store = RunStore(tmp_path_factory.mktemp("source"))
    for residual in (False, True):
        config = RunConfig(model=ModelConfig(depth=8, width=0.25, residual=residual),
                           train=TrainConfig(epochs=1, batch_size=16, eval_images=20, device="cpu", precision="fp32",
                                             threads=1))
        Trainer(config, data=data, store=store).run()
    return store


@pytest.fixture(scope="module")
def good_pack(source) -> bytes:
    return pack_bytes(source, [r.id for r in source.list()])


def members(pack: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(pack)) as z:
        return {name: z.read(name) for name in z.namelist()}


def rezip(files: dict[str, bytes], extra: list[tuple[zipfile.ZipInfo, bytes]] = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in files.items():
            z.writestr(name, content)
        for info, content in extra:
            z.writestr(info, content)
    return buf.getvalue()


def first_run(files: dict[str, bytes]) -> str:
    return json.loads(files[MANIFEST])["runs"][0]


def test_round_trip_keeps_every_file(source, good_pack, tmp_path):
    target = RunStore(tmp_path / "laptop")
    result = unpack(target, io.BytesIO(good_pack))
    ids = [r.id for r in source.list()]
    assert result.added == [(i, i) for i in ids] and result.skipped == []
    for run_id in ids:
        a, b = source.get(run_id), target.get(run_id)
        assert (a.name, a.label, a.state, a.config) == (b.name, b.label, b.state, b.config)
        assert a.metrics.keys() == b.metrics.keys() and a.layer_names == b.layer_names
        for key in a.metrics:
            np.testing.assert_array_equal(a.metrics[key], b.metrics[key])
        assert (a.path / "checkpoint.safetensors").read_bytes() == (b.path / "checkpoint.safetensors").read_bytes()
        assert (a.path / "config.json").read_bytes() == (b.path / "config.json").read_bytes()
        for p, q in zip(source.load_model(run_id).parameters(), target.load_model(run_id).parameters()):
            torch.testing.assert_close(p, q)
    assert sorted(p.name for p in target.root.iterdir()) == sorted(ids)  # no staging folder left


def test_pack_to_a_file_and_what_cannot_be_packed(source, tmp_path):
    run_id = source.list()[0].id
    out = tmp_path / "lecture.zip"
    assert pack_runs(source, [run_id, run_id], out) == [run_id]
    assert json.loads(members(out.read_bytes())[MANIFEST])["runs"] == [run_id]
    assert [p.name for p in tmp_path.iterdir()] == ["lecture.zip"]  # no temporary file left
    with pytest.raises(PackError, match="no folder"):
        pack_runs(source, [run_id], tmp_path / "missing" / "x.zip")
    with pytest.raises(PackError, match="at least one"):
        pack_runs(source, [], out)
    with pytest.raises(RunStoreError, match="no run"):
        pack_runs(source, ["20250101-000000-nothing-abcdef"], out)


def test_a_running_run_is_not_packed(tmp_path, source):
    store = RunStore(tmp_path / "busy")
    assert unpack(store, io.BytesIO(pack_bytes(source, [source.list()[0].id]))).added
    run = store.list()[0]
    status = json.loads((run.path / "status.json").read_text())
    (run.path / "status.json").write_text(json.dumps(dict(status, status="running", pid=os.getpid())))
    with pytest.raises(PackError, match="still training"):
        pack_bytes(store, [run.id])


def test_unpacking_never_overwrites(good_pack, tmp_path):
    store = RunStore(tmp_path / "laptop")
    first = unpack(store, io.BytesIO(good_pack))
    run_id = first.added[0][1]
    (store.root / run_id / "status.json").write_text(
        json.dumps(dict(json.loads((store.root / run_id / "status.json").read_text()), message="local notes")))
    before = {p: p.read_bytes() for p in store.root.rglob("*") if p.is_file()}
    again = unpack(store, io.BytesIO(good_pack))
    assert again.added == [] and again.skipped == [a for a, _ in first.added]
    assert {p: p.read_bytes() for p in store.root.rglob("*") if p.is_file()} == before

    both = unpack(store, io.BytesIO(good_pack), rename_clashes=True)
    assert len(both.added) == 2 and all(new != old and new.startswith(old) for old, new in both.added)
    assert {p: p.read_bytes() for p in before} == before  # the runs already there are untouched
    copy = store.get(both.added[0][1])
    assert copy.id == both.added[0][1] and copy.state == "finished" and len(store.list()) == 4
    assert store.get(run_id).status["message"] == "local notes"


def bad_packs(good: bytes):
    """(what is wrong, pack bytes, limits, words the error must contain)"""
    files = members(good)
    run_id = first_run(files)
    symlink = zipfile.ZipInfo(f"{run_id}/status.json")
    symlink.external_attr = (stat.S_IFLNK | 0o777) << 16
    link_files = {k: v for k, v in files.items() if k != f"{run_id}/status.json"}
    small = PackLimits(tensor_file_bytes=1 << 10)
    bomb = dict(files)
    bomb[f"{run_id}/metrics.safetensors"] = bytes(10 << 20)  # 10 MB of zeros, ~10 kB compressed
    model = {k: v for k, v in build_state(files, run_id).items()}
    meta = json.loads(files[f"{run_id}/config.json"])

    def with_file(name, content):
        return rezip({**files, name: content})

    def with_config(**changes):
        return with_file(f"{run_id}/config.json", json.dumps({**meta, **changes}).encode())

    wider = json.loads(json.dumps(meta))
    wider["config"]["model"]["width"] = 0.5
    manifest = json.loads(files[MANIFEST])
    yield "path traversal", rezip({**files, "../evil.txt": b"x"}), None, "outside the run store"
    yield "traversal inside", rezip({**files, f"{run_id}/../../evil": b"x"}), None, "outside the run store"
    yield "absolute path", rezip({**files, "/etc/evil": b"x"}), None, "absolute path"
    yield "windows path", rezip({**files, "C:/evil": b"x"}), None, "absolute path"
    yield "symlink", rezip(link_files, [(symlink, b"/etc/passwd")]), None, "symbolic link"
    yield "too large (declared)", good, small, "too large"
    yield "zip bomb", rezip(bomb), PackLimits(tensor_file_bytes=1 << 20), "too large"
    yield "too large in all", good, PackLimits(total_bytes=1 << 10), "too large"
    yield "zip bomb with a lying size", understate_size(rezip(bomb), f"{run_id}/metrics.safetensors"), None, \
        "damaged"
    yield "not a zip", b"hello, this is a text file\n" * 10, None, "not a zip file"
    yield "empty file", b"", None, "not a zip file"
    yield "truncated zip", good[: len(good) // 2], None, "not a zip file"
    yield "pickle member", rezip({**files, f"{run_id}/model.pkl": pickle.dumps({"a": 1})}), None, "not part of"
    yield "pickled checkpoint", with_file(f"{run_id}/checkpoint.safetensors", torch_save_bytes(model)), None, \
        "checkpoint.safetensors is not a safetensors file"
    yield "pickled metrics", with_file(f"{run_id}/metrics.safetensors", pickle.dumps([1, 2])), None, \
        "metrics.safetensors is not a safetensors file"
    yield "truncated checkpoint", with_file(f"{run_id}/checkpoint.safetensors",
                                            files[f"{run_id}/checkpoint.safetensors"][:-100]), None, \
        "not a safetensors file"
    yield "status not an object", with_file(f"{run_id}/status.json", b"[]"), None, "status.json"
    yield "status still running", with_file(f"{run_id}/status.json", b'{"status": "running"}'), None, "status.json"
    yield "config not JSON", with_file(f"{run_id}/config.json", b"{not json"), None, "not valid JSON"
    yield "config of another run", with_config(id="someone-else"), None, "config.json"
    yield "config with a bad depth", with_config(config={**meta["config"], "model": {"depth": 7}}), None, "6n+2"
    yield "config of the wrong type", with_config(config={**meta["config"], "model": 5}), None, \
        "cannot be read"
    yield "checkpoint of another model", with_config(config=wider["config"]), None, "does not fit"
    yield "no manifest", rezip({k: v for k, v in files.items() if k != MANIFEST}), None, "no manifest"
    yield "foreign manifest", with_file(MANIFEST, b'{"format": "something else", "version": 1}'), None, \
        "not a resnet_viz lecture pack"
    yield "newer version", with_file(MANIFEST, json.dumps({**manifest, "version": 99}).encode()), None, "newer"
    yield "manifest lists other runs", with_file(MANIFEST, json.dumps({**manifest, "runs": [run_id]}).encode()), \
        None, "other runs"
    yield "run without status", rezip({k: v for k, v in files.items() if k != f"{run_id}/status.json"}), None, \
        "no status.json"
    yield "duplicate member", rezip(files, [(zipfile.ZipInfo(MANIFEST), files[MANIFEST])]), None, "twice"


def understate_size(pack: bytes, name: str, size: int = 1000) -> bytes:
    """The pack with `name`'s uncompressed size given as `size` in its local header and the central directory."""
    data = bytearray(pack)
    for signature, size_at, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        at = data.find(signature)
        while at >= 0 and data[at + name_at:at + name_at + len(name)] != name.encode():
            at = data.find(signature, at + 1)
        assert at >= 0
        data[at + size_at:at + size_at + 4] = size.to_bytes(4, "little")
    return bytes(data)


def test_a_member_is_capped_while_it_is_read(good_pack):
    from resnet_viz.storage.packs import _read_member
    with zipfile.ZipFile(io.BytesIO(good_pack)) as z:
        info = next(i for i in z.infolist() if i.filename.endswith("checkpoint.safetensors"))
        with pytest.raises(PackError, match="grows past 1,000 bytes"):
            _read_member(z, info, "lecture.zip", 1000, lambda chunk: None)


def build_state(files, run_id):
    from safetensors.torch import load
    return load(files[f"{run_id}/checkpoint.safetensors"])


def torch_save_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_every_kind_of_bad_pack_is_refused_whole(good_pack, tmp_path):
    with pytest.warns(UserWarning, match="Duplicate name"):  # zipfile, asked to write the duplicate member
        cases = list(bad_packs(good_pack))
    assert len(cases) == len({c[0] for c in cases})
    for what, pack, limits, words in cases:
        store = RunStore(tmp_path / what.replace(" ", "-"))
        with pytest.raises(PackError) as caught:
            unpack(store, io.BytesIO(pack), **({"limits": limits} if limits else {}))
            pytest.fail(f"{what}: unpacked")
        print(f"{what}: {caught.value}")
        message = str(caught.value)
        assert words in message, (what, message)
        assert "\n" not in message, (what, message)
        assert not store.root.exists() or list(store.root.iterdir()) == [], what  # nothing added, nothing left


def cli(*args, check_rc=None):
    proc = subprocess.run([sys.executable, "-m", "resnet_viz", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    if check_rc is not None:
        assert proc.returncode == check_rc, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def test_cli_pack_and_unpack(source, tmp_path):
    ids = [r.id for r in source.list()]
    out = tmp_path / "lecture.zip"
    packed = cli("--runs", str(source.root), "pack", *ids, "-o", str(out), check_rc=0)
    assert "packed 2 run(s)" in packed.stderr and out.is_file()
    laptop = tmp_path / "laptop"
    added = cli("--runs", str(laptop), "unpack", str(out), check_rc=0)
    assert added.stdout.split() == ids
    again = cli("--runs", str(laptop), "unpack", str(out), check_rc=0)
    assert again.stdout == "" and again.stderr.count("skipped") == 2 and "--rename" in again.stderr
    renamed = cli("--runs", str(laptop), "unpack", str(out), "--rename", check_rc=0)
    assert len(renamed.stdout.split()) == 2 and len(RunStore(laptop).list()) == 4

    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip at all")
    bad = cli("--runs", str(laptop), "unpack", str(junk), check_rc=2)
    assert bad.stderr.startswith("error: junk.zip is not a lecture pack") and "Traceback" not in bad.stderr
    missing = cli("--runs", str(laptop), "unpack", str(tmp_path / "nope.zip"), check_rc=2)
    assert "There is no file" in missing.stderr
    unknown = cli("--runs", str(source.root), "pack", "20250101-000000-nothing-abcdef", "-o", str(out), check_rc=2)
    assert "no run" in unknown.stderr and "Traceback" not in unknown.stderr


# ------------------------------------------------------------------ packs that inflate, disks that fill (issue 19) ----
@pytest.fixture
def written(monkeypatch):
    """The bytes unpacking writes through the files it opens: {"bytes": n}; set "fail_after" for a full disk."""
    from disk_faults import CountingFile
    from resnet_viz.storage import packs
    counts = {"bytes": 0}

    def counting_open(path, mode="r", *args, **kwargs):
        f = open(path, mode, *args, **kwargs)
        return CountingFile(f, counts) if any(c in mode for c in "wxa") else f
    monkeypatch.setattr(packs, "open", counting_open, raising=False)
    return counts


def inflating(pack: bytes, name: str, prefix: bytes, zeros: int) -> bytes:
    """The pack with member `name` replaced by `prefix` and `zeros` zero bytes, deflated as they are written (about
    1,000:1), its size declared honestly."""
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(pack)) as src, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED,
                                                                   compresslevel=9) as dst:
        for info in src.infolist():
            if info.filename != name:
                dst.writestr(info.filename, src.read(info.filename))
                continue
            with dst.open(name, "w") as member:
                member.write(prefix)
                for _ in range(zeros >> 22):
                    member.write(bytes(1 << 22))
    return buf.getvalue()


def safetensors_header(tensors: dict[str, tuple[str, list[int]]]) -> bytes:
    """The first bytes of a safetensors file holding these (dtype, shape) tensors, in order."""
    entries, offset = {}, 0
    for key, (dtype, shape) in tensors.items():
        size = int(np.prod(shape)) * {"F32": 4, "I64": 8, "U8": 1}[dtype]
        entries[key] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(entries).encode()
    return len(raw).to_bytes(8, "little") + raw


def test_a_pack_that_inflates_is_refused_before_it_is_written(good_pack, tmp_path, written):
    """Issue 19's bomb, small: 32 MB of zeros in a checkpoint member of a run whose checkpoint takes ~10 kB (and may
    take ~10 MB: its cap allows the data order of a million images). However the zip describes it, unpacking writes
    nothing of the zeros: a declared size over the run's cap is refused, a lie about it is caught by the header or
    by zipfile, and only the bytes the header declares are ever written."""
    files = members(good_pack)
    run_id = first_run(files)
    name = f"{run_id}/checkpoint.safetensors"
    checkpoint = files[name]
    genuine = sum(len(content) for name, content in files.items() if name != MANIFEST)  # what a real pack writes
    zeros = 32 << 20
    honest = inflating(good_pack, name, checkpoint, zeros)
    assert len(honest) < len(good_pack) + (1 << 20)  # a small file
    first_weight = next(k for k in build_state(files, run_id) if k.endswith("weight"))
    oversized = safetensors_header({first_weight: ("F32", [zeros // 4])})
    cases = [
        ("declared honestly", honest, "more than a run of its config can need"),
        ("under the cap, past its header's end", inflating(good_pack, name, checkpoint, 1 << 22),
         f"goes on past the {len(checkpoint):,} bytes its header declares"),
        ("its size understated", understate_size(honest, name, len(checkpoint)), "damaged"),
        ("zeros from the first byte", understate_size(inflating(good_pack, name, b"", zeros), name,
                                                     len(checkpoint)), "not a safetensors file (its header is empty)"),
        ("a header that declares them", understate_size(inflating(good_pack, name, oversized, zeros), name,
                                                        len(checkpoint)), "does not fit the model"),
    ]
    for what, pack, words in cases:
        written["bytes"] = 0
        store = RunStore(tmp_path / what.replace(" ", "-"))
        with pytest.raises(PackError, match=re.escape(words)):
            unpack(store, io.BytesIO(pack))
        print(f"{what}: {written['bytes']:,} bytes written")
        assert written["bytes"] <= genuine, what
        assert not store.root.exists() or list(store.root.iterdir()) == [], what
    written["bytes"] = 0
    unpack(RunStore(tmp_path / "the real one"), io.BytesIO(good_pack))
    assert written["bytes"] == genuine


def test_caps_follow_the_runs_config(source):
    """A run's real files fit its caps with room to spare, and a larger model's caps are larger."""
    from resnet_viz.storage.run_sizes import checkpoint_cap, max_steps, metrics_cap
    for run in source.list():
        assert (run.path / "checkpoint.safetensors").stat().st_size < checkpoint_cap(run.config) < 20 << 20
        assert (run.path / "metrics.safetensors").stat().st_size < metrics_cap(run.config) < 40 << 20
        assert len(run.metrics["loss"]) <= max_steps(run.config.train)
    small, large = (RunConfig(model=ModelConfig(depth=d)) for d in (20, 110))
    assert checkpoint_cap(large) - checkpoint_cap(small) > 2 * 4 * (1.7e6 - 0.27e6)  # weights + momentum, float32
    assert metrics_cap(large) > metrics_cap(small)


def test_unpacking_onto_a_full_disk_adds_nothing(good_pack, tmp_path, written, monkeypatch):
    from resnet_viz.errors import StorageError
    store = RunStore(tmp_path / "full")
    written["fail_after"] = 20_000  # the disk fills part of the way through the first run's files
    with pytest.raises(StorageError) as caught:
        unpack(store, io.BytesIO(good_pack))
    message = str(caught.value)
    assert f"The disk holding {store.root} is full" in message and "it needs about" in message, message
    assert "\n" not in message and list(store.root.iterdir()) == []  # no run, no staging folder

    written.pop("fail_after")
    written["bytes"] = 0
    from resnet_viz.storage import packs
    monkeypatch.setattr(packs.shutil, "disk_usage", lambda path: type("Usage", (), {"free": 1 << 20})())
    with pytest.raises(StorageError, match="not enough free space") as caught:
        unpack(store, io.BytesIO(good_pack))
    assert written["bytes"] == 0 and list(store.root.iterdir()) == []


def test_unpacking_into_a_read_only_folder(good_pack, unwritable_dir):
    from resnet_viz.errors import StorageError
    with pytest.raises(StorageError, match="cannot be written to") as caught:
        unpack(RunStore(unwritable_dir), io.BytesIO(good_pack))
    assert "\n" not in str(caught.value)


def test_packing_onto_a_full_disk_keeps_the_earlier_pack(source, tmp_path, monkeypatch):
    from disk_faults import CountingFile
    from resnet_viz.errors import StorageError
    out = tmp_path / "lecture.zip"
    out.write_bytes(b"an earlier pack")
    counts = {"bytes": 0, "fail_after": 10_000}
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, mode="r", *a, **k: CountingFile(real_fdopen(fd, mode, *a, **k),
                                                                                  counts))
    with pytest.raises(StorageError, match="is full: the lecture pack lecture.zip could not be saved"):
        pack_runs(source, [r.id for r in source.list()], out)
    assert out.read_bytes() == b"an earlier pack" and [p.name for p in tmp_path.iterdir()] == ["lecture.zip"]
