"""Lecture packs: runs survive the round trip; unpacking never overwrites and turns away every kind of bad zip."""
import io
import json
import os
import pickle
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
from resnet_viz.data import Cifar10Tensors
from resnet_viz.errors import PackError, RunStoreError
from resnet_viz.packs import MANIFEST, PackLimits, pack_bytes, pack_runs, unpack
from resnet_viz.store import RunStore
from resnet_viz.trainer import Trainer

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
    from resnet_viz.packs import _read_member
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
