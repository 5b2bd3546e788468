"""Gradient-flow figures and the finding in words, on synthetic gradient norms."""
import numpy as np
import plotly.graph_objects as go
import pytest

from figure_fixtures import cifar_layer_names, fake_metrics, four_runs
from resnet_viz import figures
from resnet_viz.figures import RunSeries


@pytest.fixture(scope="module")
def runs():
    return four_runs()


def test_heatmap_uses_a_log_colour_scale_with_real_value_ticks():
    names = cifar_layer_names(20)
    g = np.tile(np.logspace(-4, 0, len(names)), (30, 1))
    fig = figures.grad_norm_heatmap(g, np.arange(30), names, "plain-20", zmin=1e-4, zmax=1.0)
    hm = fig.data[0]
    assert isinstance(hm, go.Heatmap)
    z = np.asarray(hm.z)
    assert z.shape == (len(names), 30)  # layers × steps
    assert np.allclose(z[:, 0], np.log10(g[0]), atol=1e-5)
    assert (hm.zmin, hm.zmax) == (-4.0, 0.0)
    assert list(hm.colorbar.tickvals) == [-4, -3, -2, -1, 0]
    assert list(hm.colorbar.ticktext) == ["1e-4", "1e-3", "1e-2", "1e-1", "1e0"]
    assert list(hm.y) == names and fig.layout.yaxis.autorange == "reversed"  # input at the top
    assert np.allclose(np.asarray(hm.customdata)[:, 0], g[0], rtol=1e-5)  # hover shows the real value


def test_heatmap_downsamples_to_400_columns_in_log_space():
    g = np.full((1000, 5), 1e-2)
    g[1::2] = 1.0  # alternating 1e-2, 1: the geometric mean is 1e-1
    fig = figures.grad_norm_heatmap(g, np.arange(1000), ["a", "b", "c", "d", "e"])
    z = np.asarray(fig.data[0].z)
    assert z.shape[1] <= 400 and z.shape[0] == 5
    assert np.allclose(z[:, 0], -1.0)
    x = np.asarray(fig.data[0].x)
    assert len(x) == z.shape[1] and np.all(np.diff(x) > 0) and x[0] < 5 and x[-1] > 990
    assert fig.layout.meta["columns"] == z.shape[1]


def test_heatmap_handles_zeros_and_many_layers():
    g = np.random.default_rng(0).random((3000, 600))
    g[:, 7] = 0.0  # a dead layer: log10 undefined, shown as a gap
    fig = figures.grad_norm_heatmap(g, np.arange(3000), [f"l{i}" for i in range(600)])
    z = np.asarray(fig.data[0].z)
    assert z.shape == (600, 400) and np.isnan(z[7]).all()


def test_grad_norm_profiles(runs):
    pair = [runs[1], runs[3]]
    fig = figures.grad_norm_profiles(pair, steps_to_show=[0, 25, 49])
    assert len(fig.data) == 6 and fig.layout.yaxis.type == "log"
    assert [t.line.dash for t in fig.data[:3]] == ["solid", "dash", "dot"]  # dash = step
    assert fig.data[0].line.color == fig.data[1].line.color != fig.data[3].line.color  # colour = run
    assert np.allclose(fig.data[2].y, runs[1].metrics["grad_norms"][49])
    assert list(fig.data[0].customdata) == runs[1].layer_names  # hover names the layer
    assert len(figures.grad_norm_profiles(pair).data) == 6  # default: first, middle, last
    rel = figures.grad_norm_profiles(pair, steps_to_show=[0], relative_depth=True, log_y=False)
    assert rel.data[0].x[-1] == pytest.approx(1.0) and rel.layout.yaxis.type == "linear"


def test_profiles_drop_projection_shortcuts_so_twins_line_up():
    names = cifar_layer_names(20, shortcut="B")
    assert sum("shortcut" in n for n in names) == 2
    fig = figures.grad_norm_profiles([RunSeries("resnet-20", fake_metrics(len(names)), names, True, 20)], [0])
    assert len(fig.data[0].y) == 20


def test_first_last_ratio_figure(runs):
    fig = figures.first_last_ratio_figure(runs)
    assert [t.name for t in fig.data] == [r.label for r in runs]
    assert fig.layout.yaxis.type == "log"
    expected = figures.first_last_ratio(runs[0].metrics["grad_norms"], runs[0].layer_names)
    assert np.allclose(fig.data[0].y, expected)
    assert any(s.y0 == 1 for s in fig.layout.shapes)  # the "equal" line


def test_gradient_flow_finding_follows_the_data():
    names = ["stem.conv", "stage1.block1.conv1", "stage1.block1.conv2", "fc"]
    steps = 20
    even = np.ones((steps, 4))
    f = figures.gradient_flow_finding(even, names, np.linspace(2.3, 1.5, steps))
    assert f["trend"] == "even" and not f["stuck"] and f["ratio_start"] == pytest.approx(1)
    assert "within a factor of ten" in f["sentence"] and "explodes" not in f["sentence"]

    fading = np.ones((steps, 4))
    fading[0, 0] = 500.0  # exploding at initialisation …
    fading[1:, 0] = 0.002  # … then faint at the input end
    stuck_loss = np.full(steps, np.log(10))
    f = figures.gradient_flow_finding(fading, names, stuck_loss)
    assert f["trend"] == "fades" and f["stuck"] and f["ratio_start"] == pytest.approx(500)
    assert f["ratio_end"] == pytest.approx(0.002)
    assert "500×" in f["sentence"] and "1/500" in f["sentence"] and "explodes" in f["sentence"]
    assert "chance level" in f["sentence"]

    growing = np.ones((steps, 4))
    growing[:, 0] = 50.0
    assert figures.gradient_flow_finding(growing, names)["trend"] == "grows"
    nothing = np.full((steps, 4), np.nan)
    assert figures.gradient_flow_finding(nothing, names)["ratio_end"] is None


def test_finding_names_real_steps_and_quotes_the_table_numbers():
    names = ["stem.conv", "stage1.block1.conv1", "stage1.block1.conv2", "fc"]
    g = np.ones((30, 4))
    g[0, 0] = np.nan  # the first recorded row has no usable ratio
    g[1, 0] = 50.0
    g[2:, 0] = np.linspace(0.5, 0.02, 28)
    steps = np.arange(30) * 10  # recorded every 10 steps
    f = figures.gradient_flow_finding(g, names, steps=steps)
    assert f["start_step"] == 10 and f["ratio_start"] == pytest.approx(50)
    assert "at step 10 " in f["sentence"] and "initialisation" not in f["sentence"]
    assert f["end_steps"] == (270, 290)  # the last 10% of the 30 recorded rows
    assert f["ratio_end"] == pytest.approx(np.median(g[27:, 0]))
    assert figures.format_ratio(f["ratio_end"]) in f["sentence"]  # the table's string, word for word
    g[0, 0] = 50.0
    assert "at initialisation (step 0)" in figures.gradient_flow_finding(g, names, steps=steps)["sentence"]
    with pytest.raises(ValueError):
        figures.gradient_flow_finding(g, names, steps=steps[:5])


def test_format_ratio():
    assert [figures.format_ratio(x) for x in (250.4, 3.62, 0.0563, 0.00283, None, float("nan"))] == \
        ["250×", "3.6×", "0.056×", "1/353", "—", "—"]


def test_for_projector_enlarges_type_lines_and_height(runs):
    fig = figures.grad_norm_heatmap(runs[0].metrics["grad_norms"], runs[0].metrics["grad_norm_step"],
                                    runs[0].layer_names)
    big = figures.for_projector(fig)
    scale = figures.PRESENTATION_SCALE
    assert big.layout.font.size == pytest.approx(fig.layout.font.size * scale)
    assert big.layout.height > fig.layout.height and big.data[0].colorbar.thickness > 30
    assert big.layout.meta["presentation"] and "presentation" not in fig.layout.meta  # the original is untouched
    ratio = figures.first_last_ratio_figure(runs)
    big = figures.for_projector(ratio)
    assert big.data[0].line.width > ratio.data[0].line.width
    assert big.layout.annotations[0].font.size == pytest.approx(ratio.layout.annotations[0].font.size * scale)
    assert np.allclose(big.data[0].y, ratio.data[0].y, equal_nan=True)  # the data are the same
