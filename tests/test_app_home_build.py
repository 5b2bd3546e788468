"""AppTest for the Home page (app.py) and the Build page: they render, react to the depth, and explain bad choices."""

import pytest
from streamlit.testing.v1 import AppTest

TIMEOUT = 90
K = "keep_build_"  # the Build page's widget keys (ui.KEEP_PREFIX + "build_")
STEP0 = "Gradients at step 0, before any training"  # the step-0 gradient view (tests/test_app_init_gradients.py)


@pytest.fixture(autouse=True)
def folders(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_VIZ_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("RESNET_VIZ_DATA", str(tmp_path / "data"))


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def charts(at: AppTest) -> list:
    return at.get("plotly_chart")


def subheaders(at: AppTest) -> list[str]:
    return [s.value for s in at.subheader]


def test_home_renders(tmp_path, app_test):
    at = app_test("app.py", timeout=TIMEOUT).run()
    no_exception(at)
    assert "Residual learning" in at.title[0].value
    text = " ".join(m.value for m in at.markdown)
    assert "F(x) + x" in text and "degradation" in text.lower()
    assert "[512, 512, 2048]" in text and "global average pool" in text  # the seed article's slips
    assert len(charts(at)) == 1  # the residual block picture
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Device found"] in {"CPU", "CUDA", "MPS"}
    assert metrics["CIFAR-10"] == "not yet" and metrics["Runs"] == "no runs yet"
    captions = " ".join(c.value for c in at.caption)
    assert str(tmp_path / "data") in captions and str(tmp_path / "runs") in captions


def test_build_renders_both_twins(app_test):
    at = app_test("pages/1_Build.py", timeout=TIMEOUT).run()
    no_exception(at)
    assert not at.error
    assert subheaders(at) == ["Plain twin · plain-20", "ResNet · resnet-20", STEP0]
    assert len(charts(at)) == 2  # the two block diagrams
    [table] = at.dataframe  # one table for both nets, with a column for the plain twin
    assert list(table.value.columns) == ["#", "layer", "kind", "output", "params", "MACs", "plain twin"]
    assert set(table.value["plain twin"]) == {"same"}  # conv and fc only: option A has no shortcut convs
    assert at.session_state["build_config"]["depth"] == 20


def test_build_depth_56_shows_two_summaries(app_test):
    at = app_test("pages/1_Build.py", timeout=TIMEOUT).run()
    at.number_input(key=K + "cifar_depth").set_value(56).run()
    no_exception(at)
    assert subheaders(at) == ["Plain twin · plain-56", "ResNet · resnet-56", STEP0]
    params = [m.value for m in at.metric if m.label == "Parameters"]
    assert params == ["853.02K", "853.02K"]  # option A: the shortcuts have no parameters
    assert [m.value for m in at.metric if m.label == "Weight layers"] == ["56", "56"]
    assert "6.97%" in " ".join(i.value for i in at.info)  # paper Table 6


def test_build_paper_depth_pill_sets_the_depth(app_test):
    at = app_test("pages/1_Build.py", timeout=TIMEOUT).run()
    at.button_group(key="build_cifar_pick").set_value(110).run()
    no_exception(at)
    assert at.number_input(key=K + "cifar_depth").value == 110
    assert subheaders(at)[1] == "ResNet · resnet-110"
    assert at.multiselect(key=K + "collapse_cifar_110").value == ["stage1", "stage2", "stage3"]


def test_build_bad_depth_shows_an_error_not_an_exception(app_test):
    at = app_test("pages/1_Build.py", timeout=TIMEOUT).run()
    at.number_input(key=K + "cifar_depth").set_value(21).run()
    no_exception(at)
    assert len(at.error) == 1 and "6n+2" in at.error[0].value and "21" in at.error[0].value
    assert not subheaders(at) and not charts(at)
    at.number_input(key=K + "cifar_depth").set_value(20).run()  # and it recovers
    no_exception(at)
    assert not at.error and len(subheaders(at)) == 3


def test_build_bad_width_shows_an_error(app_test):
    at = app_test("pages/1_Build.py", timeout=TIMEOUT).run()
    at.number_input(key=K + "width").set_value(0.0).run()
    no_exception(at)
    assert len(at.error) == 1 and "Width" in at.error[0].value


def test_build_imagenet_resnet50(app_test):
    at = app_test("pages/1_Build.py", timeout=TIMEOUT).run()
    at.radio(key=K + "family").set_value("imagenet").run()
    no_exception(at)
    assert not at.error
    assert subheaders(at) == ["Plain twin · plain-50", "ResNet · resnet-50", STEP0]
    assert at.radio(key=K + "shortcut").value == "B"  # the ImageNet nets' default
    params = [m.value for m in at.metric if m.label == "Parameters"]
    assert params == ["22.78M", "25.56M"]  # torchvision's resnet50 (25,557,032); B adds projections
    assert at.radio(key=K + "classes").value == 1000
    info = at.info[0].value
    assert "more parameters" in info and "3.8×10⁹" in info and "4.09×10⁹ multiply-adds" in info
    assert [m.value for m in at.metric if m.label == "Multiply-adds"][1] == "4.09G"
    assert [m.value for m in at.metric if m.label == "FLOPs"][1] == "8.18G"
    at.radio(key=K + "classes").set_value(10).run()
    no_exception(at)
    assert [m.value for m in at.metric if m.label == "Parameters"] == ["20.75M", "23.53M"]  # the CIFAR head
    at.radio(key=K + "stem").set_value("cifar").run()
    no_exception(at)
    assert subheaders(at)[1] == "ResNet · resnet-50 (CIFAR stem)"


def test_build_layer_table_toggle_and_collapse(app_test):
    at = app_test("pages/1_Build.py", timeout=TIMEOUT).run()
    rows_weight = len(at.dataframe[0].value)
    at.toggle(key=K + "all_layers").set_value(True).run()
    no_exception(at)
    table = at.dataframe[0].value
    assert len(table) > rows_weight == 20
    shortcut_rows = table[table["plain twin"] != "same"]
    assert len(shortcut_rows) == 9 and all(shortcut_rows["layer"].str.endswith(".shortcut"))  # one per block
    at.multiselect(key=K + "collapse_cifar_20").set_value(["stage2"]).run()
    no_exception(at)
    assert len(charts(at)) == 2


def test_build_choices_survive_in_session_state(app_test):
    at = app_test("pages/1_Build.py", timeout=TIMEOUT).run()
    at.number_input(key=K + "cifar_depth").set_value(32).run()
    at.toggle(key=K + "batchnorm").set_value(False).run()
    no_exception(at)
    assert at.session_state[K + "cifar_depth"] == 32 and at.session_state[K + "batchnorm"] is False
    assert subheaders(at)[1] == "ResNet · resnet-32 (no BN)"
    at.run()  # a rerun (as after a page switch) keeps them
    assert subheaders(at)[1] == "ResNet · resnet-32 (no BN)"


def test_home_preset_opens_its_plan_on_the_train_page(tmp_path, monkeypatch, known_speeds, app_test):
    """Home's button opens the Train page with that experiment's plan (steps, estimated time): nothing starts
    before the lecturer has seen it. Known speeds: nothing is timed."""
    from cifar_fixtures import write_python_batches
    from resnet_viz.execution.jobs import JobQueue
    monkeypatch.setattr("resnet_viz.execution.jobs._QUEUE", JobQueue())
    monkeypatch.setenv("RESNET_VIZ_DATA", str(write_python_batches(tmp_path / "cifar", 4, 2)))
    at = app_test("app.py", timeout=TIMEOUT).run()
    at.button(key="home_preset_fix").click().run()
    no_exception(at)
    assert at.title[0].value == "Train"  # switched to the Train page
    assert list(at.dataframe[0].value["run"]) == ["resnet-20", "resnet-56"]
    assert any("Estimated total" in m.value for m in at.markdown)
    from resnet_viz.execution.jobs import job_queue
    assert not job_queue().jobs()


def test_build_depth_1202_is_quick_and_says_what_it_leaves_out(app_test):
    import time
    at = app_test("pages/1_Build.py", timeout=TIMEOUT).run()
    start = time.process_time()
    at.button_group(key="build_cifar_pick").set_value(1202).run()
    no_exception(at)
    assert subheaders(at)[1] == "ResNet · resnet-1202"
    assert time.process_time() - start < 6  # CPU seconds for both nets, page and AppTest included
    collapse = at.multiselect(key=K + "collapse_cifar_1202")
    assert collapse.value == ["stage1", "stage2", "stage3"]
    collapse.set_value([]).run()
    no_exception(at)
    assert "first 4 and last 2" in at.multiselect(key=K + "collapse_cifar_1202").placeholder
    assert any("194 blocks of stage1" in c.value for c in at.caption)


def test_presentation_mode_enlarges_the_charts(app_test):
    import json
    at = app_test("pages/1_Build.py", timeout=TIMEOUT).run()
    normal = json.loads(charts(at)[0].proto.spec)["layout"]["font"]["size"]
    at.sidebar.toggle(key="presentation").set_value(True).run()
    no_exception(at)
    big = json.loads(charts(at)[0].proto.spec)["layout"]
    assert big["font"]["size"] > normal and big["meta"]["presentation"]
    at.sidebar.toggle(key="presentation").set_value(False).run()
    assert json.loads(charts(at)[0].proto.spec)["layout"]["font"]["size"] == normal


def test_home_with_unusable_folders_explains_instead_of_failing(tmp_path, monkeypatch, unwritable_dir, known_speeds,
                                                                app_test):
    """A run store that cannot be written (issue 9.5, from the app) and a data folder that cannot be read."""
    import pathlib
    unreadable = tmp_path / "data"
    unreadable.mkdir()
    original = pathlib.Path.iterdir

    def iterdir(self):
        if self == unreadable:
            raise PermissionError(13, "Permission denied", str(self))
        return original(self)
    monkeypatch.setattr(pathlib.Path, "iterdir", iterdir)
    monkeypatch.setenv("RESNET_VIZ_RUNS", str(unwritable_dir / "runs"))
    at = app_test("app.py", timeout=TIMEOUT).run()
    no_exception(at)
    assert any("cannot be read" in c.value for c in at.caption)
    at.button(key="home_preset_degradation").click().run()
    no_exception(at)
    assert at.title[0].value == "Train"  # the plan is shown; starting it says why it cannot
    at.button(key="preset_start").click().run()
    no_exception(at)
    assert any("cannot be saved" in e.value for e in at.error)
