"""AppTest for the Compare runs page's run actions: import a lecture pack, pack runs, train a run further."""
import json

import pytest
from streamlit.testing.v1 import AppTest

from cifar_fixtures import train_tiny_pair
from resnet_viz.execution.jobs import job_queue
from resnet_viz.storage.packs import pack_bytes
from resnet_viz.storage.store import RunStore

PAGE = "pages/5_Compare_runs.py"
TIMEOUT = 60


@pytest.fixture(scope="module")
def pack(tmp_path_factory, data_dir) -> bytes:
    store = RunStore(train_tiny_pair(tmp_path_factory.mktemp("gpu-box"), data_dir, epochs=1))
    return pack_bytes(store, [r.id for r in store.list()])


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def import_file(at: AppTest, name: str, content: bytes, keep_both: bool = False) -> AppTest:
    at.file_uploader(key="import_pack").set_value((name, content, "application/zip")).run()
    at.checkbox(key="import_keep_both").set_value(keep_both)
    at.button(key="import_button").click().run()
    no_exception(at)
    return at


def test_import_box_fills_an_empty_store_and_never_overwrites(pack, data_dir, tmp_path, app_test):
    runs = tmp_path / "laptop-runs"
    at = app_test(PAGE, runs, data_dir).run()
    no_exception(at)
    assert any("store is empty" in i.value for i in at.info)
    assert at.button(key="import_button").disabled  # nothing uploaded yet

    import_file(at, "lecture.zip", pack)
    assert any("Imported 2 run(s) from lecture.zip" in s.value for s in at.success), [s.value for s in at.success]
    assert len(RunStore(runs).list()) == 2
    assert not any("store is empty" in i.value for i in at.info)  # the page lists the new runs at once
    assert len(at.multiselect(key="keep_compare_runs").value) == 2

    before = {p: p.read_bytes() for p in runs.rglob("*") if p.is_file()}
    import_file(at, "lecture.zip", pack)
    assert any("Skipped 2 run(s)" in w.value and "nothing was overwritten" in w.value for w in at.warning)
    assert {p: p.read_bytes() for p in before} == before and len(RunStore(runs).list()) == 2

    import_file(at, "lecture.zip", pack, keep_both=True)
    assert any("Imported 2 run(s)" in s.value for s in at.success) and len(RunStore(runs).list()) == 4
    # every picker tells the copies from their originals (the id cut to 15 characters made them identical)
    for picker in (at.multiselect(key="keep_compare_runs"), at.selectbox(key="export_pick")):
        titles = list(picker.options)
        assert len(set(titles)) == 4 and sum(" · copy " in t for t in titles) == 2, titles


def test_short_ids_tell_copies_apart():
    import ui
    assert ui.short_id("20261207-005257-plain-20-27f501") == "20261207-005257 · 27f501"
    assert ui.short_id("20261207-005257-plain-20-27f501-copy-3c9e1a") == "20261207-005257 · 27f501 · copy 3c9e1a"
    assert ui.short_id("my-own-run") == "my-own-run"  # an id of another shape is kept whole


def test_import_box_explains_a_bad_file(data_dir, tmp_path, app_test):
    at = app_test(PAGE, tmp_path / "runs", data_dir).run()
    import_file(at, "holiday-photos.zip", b"definitely not a zip")
    assert [e.value for e in at.error] == ["holiday-photos.zip is not a lecture pack: it is not a zip file, or a "
                                           "damaged one."]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_import_box_refuses_a_pack_that_inflates_and_says_when_the_disk_is_full(pack, data_dir, tmp_path, monkeypatch,
                                                                                app_test):
    import io
    import zipfile

    from disk_faults import CountingFile
    from resnet_viz.storage import packs
    runs = tmp_path / "runs"
    at = app_test(PAGE, runs, data_dir).run()
    buf = io.BytesIO()  # the pack, its first checkpoint followed by 32 MB of zeros (a ~100 kB upload)
    with zipfile.ZipFile(io.BytesIO(pack)) as src, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) \
            as dst:
        bomb = next(n for n in src.namelist() if n.endswith("checkpoint.safetensors"))
        for name in src.namelist():
            with dst.open(name, "w") as member:
                member.write(src.read(name))
                if name == bomb:
                    for _ in range(8):
                        member.write(bytes(4 << 20))
    import_file(at, "inflating.zip", buf.getvalue())
    assert [e.value for e in at.error] and "inflating.zip is too large to unpack" in at.error[0].value
    assert not runs.exists() or not any(runs.iterdir())

    counts = {"bytes": 0, "fail_after": 0}
    monkeypatch.setattr(packs, "open", lambda path, mode="r": CountingFile(open(path, mode), counts), raising=False)
    import_file(at, "lecture.zip", pack)
    assert [e.value for e in at.error] and at.error[0].value.startswith(f"The disk holding {runs} is full: the "
                                                                        f"runs of lecture.zip could not be saved")
    assert not any(runs.iterdir())


def test_pack_download_and_train_further(pack, data_dir, tmp_path, app_test):
    runs = tmp_path / "runs"
    at = app_test(PAGE, runs, data_dir).run()
    import_file(at, "lecture.zip", pack)
    download = at.get("download_button")
    assert any("as a lecture pack" in d.proto.label and not d.proto.disabled for d in download)

    store = RunStore(runs)
    run = store.list()[0]
    steps_before = run.status["step"]
    at.selectbox(key="extend_pick").set_value(run.id)
    at.number_input(key="extend_epochs").set_value(2.0)
    at.button(key="extend_button").click().run()
    no_exception(at)
    assert any("for 2 epochs more" in s.value for s in at.success), [e.value for e in at.error]
    assert job_queue().wait(TIMEOUT)
    extended = store.get(run.id)
    assert extended.state == "finished" and extended.status["step"] == 3 * steps_before
    assert len(extended.metrics["loss"]) == 3 * steps_before
    meta = json.loads((extended.path / "config.json").read_text())
    assert meta["extensions"][0]["from_step"] == steps_before
