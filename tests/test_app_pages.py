"""AppTest for the Train, Gradient flow, Grad-CAM and Compare pages: empty store, runs present, interactions."""
import io
import re

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from resnet_viz.execution.jobs import job_queue
from resnet_viz.storage.store import RunStore

PAGES = ["pages/2_Train.py", "pages/3_Gradient_flow.py", "pages/4_Grad-CAM.py", "pages/5_Compare_runs.py"]
TIMEOUT = 60


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


@pytest.mark.parametrize("page", PAGES)
def test_pages_render_with_an_empty_store(page, tmp_path, data_dir, app_test):
    at = app_test(page, tmp_path / "empty-runs", data_dir).run()
    no_exception(at)
    assert at.title[0].value


@pytest.mark.parametrize("page", PAGES[1:])
def test_pages_render_with_runs(page, trained_store, data_dir, app_test):
    at = app_test(page, trained_store, data_dir).run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert len(at.multiselect[0].value) == 2  # the plain/residual pair is picked by default


def test_gradient_flow_interactions(trained_store, data_dir, app_test):
    at = app_test("pages/3_Gradient_flow.py", trained_store, data_dir).run()
    steps = at.multiselect[1]
    steps.set_value([0]).run()
    at.toggle(key="keep_grad_log").set_value(False).run()
    no_exception(at)
    one = at.multiselect[0].value[:1]
    at.multiselect[0].set_value(one).run()
    no_exception(at)


def test_gradcam_layers_classes_and_uploads(trained_store, data_dir, app_test):
    at = app_test("pages/4_Grad-CAM.py", trained_store, data_dir).run()
    no_exception(at)
    assert len(at.get("image")) >= 3  # input + one overlay per model, per image
    layers = at.selectbox[0].options
    at.selectbox[0].set_value(layers[1]).run()  # a stage
    no_exception(at)
    at.selectbox[1].set_value("ship").run()
    no_exception(at)
    at.toggle(key="keep_cam_untrained").set_value(True).run()  # untrained twins too
    no_exception(at)
    at.radio[0].set_value("Random CIFAR-10 test images").run()
    no_exception(at)


def test_gradcam_with_a_missing_data_folder(trained_store, tmp_path, app_test):
    at = app_test("pages/4_Grad-CAM.py", trained_store, tmp_path / "no-such-folder").run()
    no_exception(at)
    assert any("does not exist" in e.value or "No CIFAR-10" in e.value for e in at.error)


def test_compare_page_delete_needs_confirmation(trained_store, data_dir, tmp_path, app_test):
    import shutil
    runs = tmp_path / "runs"
    shutil.copytree(trained_store, runs)
    at = app_test("pages/5_Compare_runs.py", runs, data_dir).run()
    no_exception(at)
    doomed = RunStore(runs).list()[0].id
    at.multiselect(key="delete_pick").set_value([doomed]).run()
    assert at.button(key="delete_button").disabled  # not before the confirmation box is ticked
    at.checkbox(key="delete_sure").check().run()
    at.button(key="delete_button").click().run()
    no_exception(at)
    assert [r.id for r in RunStore(runs).list()] != [] and doomed not in [r.id for r in RunStore(runs).list()]


def test_corrupt_run_directory_is_reported_not_raised(trained_store, data_dir, tmp_path, app_test):
    import shutil
    runs = tmp_path / "runs"
    shutil.copytree(trained_store, runs)
    (runs / "20990101-000000-broken-000000").mkdir()
    (runs / "20990101-000000-broken-000000" / "config.json").write_text("{oops")
    for page in PAGES[1:]:
        at = app_test(page, runs, data_dir).run()
        no_exception(at)
        assert any("could not be read" in w.value for w in at.sidebar.warning)


def test_damaged_runs_hide_only_themselves_on_every_page(trained_store, data_dir, tmp_path, app_test):
    """Issue 9.2 and 9.3: valid JSON of the wrong shape, and a truncated metrics file, beside good runs."""
    import json
    import shutil
    runs = tmp_path / "runs"
    shutil.copytree(trained_store, runs)
    good = [r.id for r in RunStore(runs).list()]
    for name, damage in (("config-null", lambda c, s: c.update(config=None)),
                         ("status-list", lambda c, s: s.update(status=["finished"])),
                         ("created-text", lambda c, s: c.update(created="yesterday")),
                         ("huge-pid", lambda c, s: s.update(status="running", pid=2**70)),
                         ("width-x", lambda c, s: c["config"]["model"].update(width="x")),
                         ("step-many", lambda c, s: s.update(step="many"))):
        run = runs / f"20990101-000000-{name}-000000"
        shutil.copytree(runs / good[0], run)
        config, status = (json.loads((run / f).read_text()) for f in ("config.json", "status.json"))
        damage(config, status)
        (run / "config.json").write_text(json.dumps(config))
        (run / "status.json").write_text(json.dumps(status))
    torn = runs / "20990101-000000-torn-metrics-000000"
    shutil.copytree(runs / good[1], torn)
    (torn / "metrics.safetensors").write_bytes((torn / "metrics.safetensors").read_bytes()[:200])
    for page in PAGES[1:] + ["pages/6_Analyses.py"]:
        at = app_test(page, runs, data_dir).run()
        no_exception(at)
        warnings = " ".join(w.value for w in at.sidebar.warning)
        assert "6 folder(s)" in warnings, (page, warnings)
        if page != "pages/6_Analyses.py":  # the Analyses page reads no curves, so the torn file does not matter
            assert "torn-metrics" in warnings, (page, warnings)
        assert len(at.multiselect[0].value) == 2, page  # the good pair is still there, and picked


def test_train_page_absurd_depth_is_refused_not_built(tmp_path, data_dir, app_test):
    """Issue 9.1: a valid 6n+2 that took the whole server down."""
    at = app_test("pages/2_Train.py", tmp_path / "runs", data_dir).run()
    at.text_input(key="keep_train_depths").set_value("1000000004")
    at.button(key="queue_custom").click().run()
    no_exception(at)
    assert any("2,000" in e.value for e in at.error)
    assert job_queue().jobs(owner=None) == [] or all(j.config.model.depth != 1_000_000_004 for j in job_queue().jobs())


def test_train_page_trains_a_tiny_custom_run(tmp_path, data_dir, app_test):
    runs = tmp_path / "runs"
    at = app_test("pages/2_Train.py", runs, data_dir).run()
    no_exception(at)
    at.text_input(key="keep_train_depths").set_value("8")
    at.multiselect(key="keep_train_archs").set_value(["plain"])
    at.number_input(key="keep_train_width").set_value(0.25)
    at.number_input(key="keep_train_epochs").set_value(1.0)
    at.number_input(key="keep_train_subset").set_value(0)
    at.number_input(key="keep_train_batch").set_value(32)
    at.button(key="queue_custom").click().run()  # the form's submit button
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert job_queue().wait(TIMEOUT)
    at.run()
    no_exception(at)
    [run] = RunStore(runs).list()
    assert run.state == "finished" and run.has_checkpoint
    # A finished job is one line with what it reached (the live charts are the running job's, on top)
    assert any("finished" in m.value and re.search(r"\d+ steps, (learned|near chance)", m.value) for m in at.markdown)
    assert not at.get("plotly_chart")


def test_train_page_bad_depth_is_explained(tmp_path, data_dir, app_test):
    at = app_test("pages/2_Train.py", tmp_path / "runs", data_dir).run()
    at.text_input(key="keep_train_depths").set_value("21")
    at.button(key="queue_custom").click().run()
    no_exception(at)
    assert any("6n+2" in e.value for e in at.error)
    at.text_input(key="keep_train_depths").set_value("twenty")
    at.button(key="queue_custom").click().run()
    assert any("whole numbers" in e.value for e in at.error)


def test_train_page_missing_data_says_how_to_fix(tmp_path, app_test):
    runs = tmp_path / "runs"
    at = app_test("pages/2_Train.py", runs, tmp_path / "nothing-here").run()
    at.text_input(key="keep_train_depths").set_value("8")
    at.multiselect(key="keep_train_archs").set_value(["plain"])
    at.button(key="queue_custom").click().run()
    assert job_queue().wait(TIMEOUT)
    at.run()
    no_exception(at)
    assert any("RESNET_VIZ_DATA" in e.value or "--data" in e.value for e in at.error)
    assert any("data folder" in i.value for i in at.info)


def test_uploads_of_images_and_non_images(trained_store, data_dir, app_test):
    from resnet_viz.analyses.gradcam import load_image
    buf = io.BytesIO()
    Image.new("RGBA", (300, 200), (200, 30, 30, 128)).save(buf, "PNG")
    assert load_image(buf.getvalue()).shape == (3, 32, 32)
    # AppTest cannot drive st.file_uploader; the browser test uploads through the real widget.
    at = app_test("pages/4_Grad-CAM.py", trained_store, data_dir).run()
    at.radio[0].set_value("Upload an image").run()
    no_exception(at)
