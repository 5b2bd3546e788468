"""The Analyses page (AppTest on a tiny trained plain/residual pair) and its figure builders (synthetic data)."""
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
from streamlit.testing.v1 import AppTest

from cifar_fixtures import train_tiny_pair, write_python_batches
from resnet_viz import analysis_plots as AP
from resnet_viz.analyses import NOT_REMOVABLE
from resnet_viz.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "pages/6_Analyses.py")
TIMEOUT = 60
TABS = ("1 · Response std", "2 · Branch ratio", "3 · Lesion study", "4 · Loss landscape", "5 · Shattered gradients",
        "6 · Dead ReLUs")


# ------------------------------------------------------------------------------------------ figures ----
def names(n, prefix="layer"):
    return [f"{prefix}{i}" for i in range(n)]


def test_response_std_figure_plain_and_residual():
    plain = [(n, v) for n, v in zip(names(5), [1.0, 0.9, 0.8, 1.2, 0.7])]
    res = [(n, v) for n, v in zip(names(5), [0.5, 0.4, 0.3, 0.6, 0.2])]
    fig = AP.response_std_figure([("plain-20", plain), ("resnet-20", res)], log_y=True)
    assert [t.name for t in fig.data] == ["plain-20", "resnet-20"]
    assert list(fig.data[0].x) == [1, 2, 3, 4, 5] and list(fig.data[0].customdata) == names(5)
    assert fig.data[0].line.color != fig.data[1].line.color  # warm vs cool
    assert fig.layout.yaxis.type == "log" and "layer" in fig.layout.xaxis.title.text
    assert "%{customdata}" in fig.data[0].hovertemplate
    ranked = AP.response_std_figure([("plain-20", plain)], sort_by_magnitude=True)
    assert list(ranked.data[0].y) == sorted([1.0, 0.9, 0.8, 1.2, 0.7], reverse=True)
    assert ranked.data[0].customdata[0] == "layer3" and "sorted" in ranked.layout.xaxis.title.text


def test_branch_ratio_figures():
    data = [("stage1.block1", 0.4), ("stage2.block1", 0.9), ("stage3.block1", 0.2)]
    fig = AP.branch_ratio_figure([{"label": "resnet-20", "data": data, "residual": True, "depth": 20}])
    assert isinstance(fig.data[0], go.Bar) and list(fig.data[0].x) == [n for n, _ in data]
    assert fig.layout.xaxis.type == "category" and "F(x)" in fig.layout.yaxis.title.text
    assert any(s.y0 == 1.0 for s in fig.layout.shapes)  # the ‖F(x)‖ = ‖x‖ reference line
    hist = AP.branch_ratio_training_figure([0, 10, 20], np.random.rand(3, 3), [n for n, _ in data], label="resnet-20")
    assert [t.name for t in hist.data] == [n for n, _ in data] and list(hist.data[0].x) == [0, 10, 20]
    assert AP.branch_ratio_training_figure([0, 1], np.ones((2, 2)), ["only one name"]).data[1].name == "block 2"
    with pytest.raises(ValueError):
        AP.branch_ratio_training_figure([0, 1, 2], np.ones((2, 3)))


def lesion_result(residual):
    blocks = [{"block": "stage1.block1", "removable": True, "reason": None, "accuracy": 0.6},
              {"block": "stage2.block1", "removable": residual, "reason": None if residual else NOT_REMOVABLE,
               "accuracy": 0.3 if residual else None},
              {"block": "stage2.block2", "removable": True, "reason": None, "accuracy": 0.5}]
    return {"baseline": 0.7, "images": 32, "blocks": blocks}


def test_lesion_single_figure_marks_blocks_that_cannot_be_removed():
    fig = AP.lesion_single_figure([("plain-8", lesion_result(False)), ("resnet-8", lesion_result(True))])
    by_name = {t.name: t for t in fig.data}
    stuck = by_name["plain-8: cannot be removed"]
    assert list(stuck.x) == ["stage2.block1"] and stuck.marker.pattern.shape == "/"
    assert NOT_REMOVABLE in stuck.customdata[0] and "%{customdata}" in stuck.hovertemplate
    assert list(by_name["plain-8: block deleted"].x) == ["stage1.block1", "stage2.block2"]
    assert list(by_name["resnet-8: block deleted"].y) == pytest.approx([60, 30, 50])
    assert list(by_name["plain-8: intact (70.0%)"].y) == pytest.approx([70, 70, 70])
    assert fig.layout.yaxis.range == (0, 100) and any(s.y0 == 10 for s in fig.layout.shapes)  # chance


def test_lesion_random_figure_mean_and_spread():
    res = {0: [0.8], 1: [0.7, 0.6], 2: [0.5, 0.3]}
    fig = AP.lesion_random_figure([("resnet-20", res), ("plain-20", {0: [0.8], 1: [0.1, 0.1]})])
    mean = fig.data[0]
    assert list(mean.x) == [0, 1, 2] and list(mean.y) == pytest.approx([80, 65, 40])
    assert list(mean.error_y.array) == pytest.approx([0, 5, 10])
    draws = fig.data[1]
    assert len(draws.x) == 5 and draws.showlegend is False
    assert "k" in fig.layout.xaxis.title.text


def test_landscape_figures():
    alphas = np.linspace(-1, 1, 5)
    one = {"alphas": alphas, "losses": 1 + alphas ** 2, "accuracies": 0.5 - 0.1 * alphas ** 2}
    fig = AP.landscape_1d_figure([("resnet-20", one), ("plain-20", one)], log_y=True)
    assert len(fig.data) == 4 and fig.layout.yaxis.type == "log" and fig.layout.yaxis2.range == (0, 100)
    z = 1 + alphas[None, :] ** 2 + 2 * alphas[:, None] ** 2
    contour = AP.landscape_2d_figure(alphas, alphas, z, title="resnet-20", zmin=0.5, zmax=20)
    assert isinstance(contour.data[0], go.Contour) and contour.data[0].z[2][2] == pytest.approx(0.0)  # log10(1)
    assert contour.data[0].zmax == pytest.approx(np.log10(20)) and "α" in contour.layout.xaxis.title.text
    assert contour.data[1].x == (0.0,)  # the origin marker
    linear = AP.landscape_2d_figure(alphas, alphas, z, log_z=False)
    assert linear.data[0].z[0][0] == pytest.approx(z[0, 0])
    surface = AP.landscape_2d_figure(alphas, alphas, z, surface=True)
    assert isinstance(surface.data[0], go.Surface) and surface.layout.scene.xaxis.title.text.startswith("α")
    with pytest.raises(ValueError):
        AP.landscape_2d_figure(alphas, alphas[:3], z)


def test_shattering_figures():
    rng = np.random.default_rng(0)
    lags = np.arange(5)
    smooth = {"t": np.linspace(-1, 1, 16), "signal": np.sin(np.linspace(0, 3, 16)), "lags": lags,
              "autocorrelation": np.linspace(1, 0.6, 5), "gradient_cosine": np.linspace(1, 0.8, 5)}
    noisy = {"t": np.linspace(-1, 1, 16), "signal": rng.normal(size=16), "lags": lags,
             "autocorrelation": np.r_[1, rng.normal(0, 0.1, 4)], "gradient_cosine": np.r_[1, np.zeros(4)]}
    series = [("resnet-56", smooth), ("plain-56", noisy)]
    auto = AP.shattering_figure(series, "autocorrelation")
    assert list(auto.data[0].x) == list(lags) and auto.layout.yaxis.range == (-1.05, 1.05)
    cos = AP.shattering_figure(series, "cosine")
    assert list(cos.data[1].y) == [1, 0, 0, 0, 0]
    sig = AP.shattering_figure(series, "signal")
    assert len(sig.data) == 2 and sig.data[1].yaxis == "y2"
    assert np.std(sig.data[1].y) == pytest.approx(1.0)  # standardised
    with pytest.raises(ValueError):
        AP.shattering_figure(series, "spectrum")


def test_dead_relu_figure():
    data = [("stem.relu", 0.0), ("stage1.block1.relu1", 0.25), ("stage1.block1.relu_out", 1.0)]
    fig = AP.dead_relu_figure([("plain-8", data)])
    assert list(fig.data[0].y) == [0, 25, 100] and list(fig.data[0].customdata) == [n for n, _ in data]
    assert "%" in fig.layout.yaxis.title.text


# ---------------------------------------------------------------------------------------------- page ----
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_python_batches(tmp_path_factory.mktemp("cifar"), n_train_per_class=8, n_test_per_class=4)


@pytest.fixture(scope="module")
def trained_store(tmp_path_factory, data_dir):
    """A plain/residual pair of tiny nets, trained for real on the tiny data."""
    return train_tiny_pair(tmp_path_factory.mktemp("runs"), data_dir, epochs=2)


def app(runs: Path, data: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("RESNET_VIZ_RUNS", str(runs))
    monkeypatch.setenv("RESNET_VIZ_DATA", str(data))
    return AppTest.from_file(PAGE, default_timeout=TIMEOUT)


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def open_tab(at: AppTest, i: int) -> AppTest:
    at.session_state["analysis"] = TABS[i]
    return ok(at.run())


def charts(at: AppTest) -> int:
    return len(at.get("plotly_chart"))


def test_empty_store(tmp_path, data_dir, monkeypatch):
    at = ok(app(tmp_path / "no-runs", data_dir, monkeypatch).run())
    assert at.title[0].value and any("empty" in i.value for i in at.info)


def test_missing_data_folder_is_an_error_not_an_exception(trained_store, tmp_path, monkeypatch):
    at = app(trained_store, tmp_path / "no-such-folder", monkeypatch).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.error and any("data folder" in i.value for i in at.info)


def test_every_section_and_compute_button(trained_store, data_dir, monkeypatch):
    at = app(trained_store, data_dir, monkeypatch)
    at.session_state["keep_an_images"] = 16
    ok(at.run())
    assert len(at.multiselect[0].value) == 2  # the plain/residual pair by default
    assert charts(at) == 1  # response std
    at.toggle(key="keep_an_std_sorted").set_value(True)
    ok(at.run())

    open_tab(at, 1)
    # plain twin explained; the ResNet's ratios drawn now and as its trainer logged them every 10 steps
    assert charts(at) == 2 and any("plain net" in i.value for i in at.info)

    open_tab(at, 2)
    assert charts(at) == 0
    assert any("cannot be removed" in m.value for m in at.markdown)
    at.number_input(key="keep_an_lesion_images").set_value(16)
    at.slider(key="keep_an_lesion_k").set_value(2)
    at.slider(key="keep_an_lesion_draws").set_value(2)
    ok(at.button(key="an_lesion_single_go").click().run())
    assert charts(at) == 1
    ok(at.button(key="an_lesion_random_go").click().run())
    assert charts(at) == 2
    ok(at.run())
    assert charts(at) == 2  # kept after a rerun without a click

    open_tab(at, 3)
    at.slider(key="keep_an_land_grid").set_value(3)
    at.number_input(key="keep_an_land_images").set_value(8)
    ok(at.button(key="an_landscape_go").click().run())
    assert charts(at) == 2  # one contour map per model
    ok(at.toggle(key="keep_an_land_surface").set_value(True).run())
    assert charts(at) == 2  # from the cache, as 3-D surfaces
    ok(at.radio(key="keep_an_land_mode").set_value("1-D line").run())
    ok(at.slider(key="keep_an_land_points").set_value(3).run())
    assert charts(at) == 0  # new settings wait for the button
    ok(at.button(key="an_landscape_go").click().run())
    assert charts(at) == 1

    open_tab(at, 4)
    assert charts(at) == 1 and len(at.metric) == 2
    at.select_slider(key="keep_an_shatter_points").set_value(16)
    ok(at.radio(key="keep_an_shatter_view").set_value("signal").run())
    assert charts(at) == 1

    open_tab(at, 5)
    assert charts(at) == 1


def test_fresh_models(trained_store, data_dir, monkeypatch):
    at = app(trained_store, data_dir, monkeypatch)
    at.session_state["keep_an_images"] = 16
    ok(at.run())
    ok(at.toggle(key="keep_an_fresh").set_value(True).run())
    assert any("untrained" in c.value for c in at.caption)
    assert charts(at) == 1
    for i in (1, 4, 5):
        open_tab(at, i)
        assert charts(at) == 1


def test_a_plain_only_selection_in_the_branch_ratio_section(trained_store, data_dir, monkeypatch):
    at = app(trained_store, data_dir, monkeypatch)
    at.session_state["keep_an_images"] = 16
    at.session_state["analysis"] = TABS[1]
    ok(at.run())
    plain = [r.id for r in RunStore(trained_store).list() if not r.config.model.residual]
    ok(at.multiselect[0].set_value(plain).run())
    assert at.multiselect[0].value == plain
    assert charts(at) == 0
    assert any("no shortcut" in i.value and "Add a ResNet" in i.value for i in at.info)
