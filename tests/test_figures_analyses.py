"""The figures of the six analyses, on synthetic analysis results."""
import numpy as np
import plotly.graph_objects as go
import pytest

from resnet_viz import figures
from resnet_viz.analyses import NOT_REMOVABLE
from resnet_viz.figures import AnalysisSeries as S


def names(n, prefix="layer"):
    return [f"{prefix}{i}" for i in range(n)]


def test_response_std_figure_plain_and_residual():
    plain = [(n, v) for n, v in zip(names(5), [1.0, 0.9, 0.8, 1.2, 0.7])]
    res = [(n, v) for n, v in zip(names(5), [0.5, 0.4, 0.3, 0.6, 0.2])]
    fig = figures.response_std_figure([S("plain-20", plain, False, 20), S("resnet-20", res, True, 20)],
                                      log_y=True)
    assert [t.name for t in fig.data] == ["plain-20", "resnet-20"]
    assert list(fig.data[0].x) == [1, 2, 3, 4, 5] and list(fig.data[0].customdata) == names(5)
    assert fig.data[0].line.color != fig.data[1].line.color  # warm vs cool
    assert fig.layout.yaxis.type == "log" and "layer" in fig.layout.xaxis.title.text
    assert "%{customdata}" in fig.data[0].hovertemplate
    ranked = figures.response_std_figure([S("plain-20", plain, False, 20)], sort_by_magnitude=True)
    assert list(ranked.data[0].y) == sorted([1.0, 0.9, 0.8, 1.2, 0.7], reverse=True)
    assert ranked.data[0].customdata[0] == "layer3" and "sorted" in ranked.layout.xaxis.title.text


def test_branch_ratio_figures():
    data = [("stage1.block1", 0.4), ("stage2.block1", 0.9), ("stage3.block1", 0.2)]
    fig = figures.branch_ratio_figure([{"label": "resnet-20", "data": data, "residual": True, "depth": 20}])
    assert isinstance(fig.data[0], go.Bar) and list(fig.data[0].x) == [n for n, _ in data]
    assert fig.layout.xaxis.type == "category" and "F(x)" in fig.layout.yaxis.title.text
    assert any(s.y0 == 1.0 for s in fig.layout.shapes)  # the ‖F(x)‖ = ‖shortcut(x)‖ reference line …
    assert not fig.layout.annotations and fig.data[-1].name == "branch as large as the shortcut (1)"  # … named
    hist = figures.branch_ratio_training_figure([0, 10, 20], np.random.rand(3, 3), [n for n, _ in data],
                                                label="resnet-20")
    assert [t.name for t in hist.data] == [n for n, _ in data] and list(hist.data[0].x) == [0, 10, 20]
    assert figures.branch_ratio_training_figure([0, 1], np.ones((2, 2)), ["only one name"]).data[1].name == "block 2"
    with pytest.raises(ValueError):
        figures.branch_ratio_training_figure([0, 1, 2], np.ones((2, 3)))


def lesion_result(residual):
    blocks = [{"block": "stage1.block1", "removable": True, "reason": None, "accuracy": 0.6},
              {"block": "stage2.block1", "removable": residual, "reason": None if residual else NOT_REMOVABLE,
               "accuracy": 0.3 if residual else None},
              {"block": "stage2.block2", "removable": True, "reason": None, "accuracy": 0.5}]
    return {"baseline": 0.7, "images": 32, "blocks": blocks}


def test_lesion_single_figure_marks_blocks_that_cannot_be_removed():
    fig = figures.lesion_single_figure([S("plain-8", lesion_result(False), False, 8),
                                        S("resnet-8", lesion_result(True), True, 8)])
    by_name = {t.name: t for t in fig.data}
    stuck = by_name["plain-8: ✕ cannot be removed"]
    assert list(stuck.x) == ["stage2.block1"] and list(stuck.y) == [0]  # not an accuracy: no bar reaches up
    [mark] = [a for a in fig.layout.annotations if a.text == "✕"]  # a mark, not words over the next bars
    assert mark.y == 0 and "cannot be removed" in mark.hovertext and NOT_REMOVABLE in mark.hovertext
    assert mark.x == pytest.approx(1 - 0.4 + 0.2)  # in plain-8's slot (the left of two) at the second block
    assert list(fig.layout.xaxis.categoryarray) == ["stage1.block1", "stage2.block1", "stage2.block2"]  # depth order
    assert list(by_name["plain-8: block deleted"].x) == ["stage1.block1", "stage2.block2"]
    assert list(by_name["resnet-8: block deleted"].y) == pytest.approx([60, 30, 50])
    assert list(by_name["plain-8: intact (70.0%)"].y) == pytest.approx([70, 70, 70])
    assert fig.layout.yaxis.range == (0, 100) and any(s.y0 == 10 for s in fig.layout.shapes)  # chance
    assert not [a for a in fig.layout.annotations if "chance" in a.text]  # named in the legend, not over the bars
    assert "chance (10 classes)" in [t.name for t in fig.data]


def test_lesion_random_figure_mean_and_spread():
    res = {0: [0.8], 1: [0.7, 0.6], 2: [0.5, 0.3]}
    fig = figures.lesion_random_figure([S("resnet-20", res, True, 20),
                                        S("plain-20", {0: [0.8], 1: [0.1, 0.1]}, False, 20)])
    mean = fig.data[0]
    assert list(mean.x) == [0, 1, 2] and list(mean.y) == pytest.approx([80, 65, 40])
    assert list(mean.error_y.array) == pytest.approx([0, 5, 10])
    draws = fig.data[1]
    assert len(draws.x) == 5 and draws.showlegend is False
    assert "k" in fig.layout.xaxis.title.text


def test_landscape_figures():
    alphas = np.linspace(-1, 1, 5)
    one = {"alphas": alphas, "losses": 1 + alphas ** 2, "accuracies": 0.5 - 0.1 * alphas ** 2}
    fig = figures.landscape_1d_figure([S("resnet-20", one, True, 20), S("plain-20", one, False, 20)], log_y=True)
    assert len(fig.data) == 4 and fig.layout.yaxis.type == "log" and fig.layout.yaxis2.range == (0, 100)
    z = 1 + alphas[None, :] ** 2 + 2 * alphas[:, None] ** 2
    contour = figures.landscape_2d_figure(alphas, alphas, z, title="resnet-20", zmin=0.5, zmax=20)
    assert isinstance(contour.data[0], go.Contour) and contour.data[0].z[2][2] == pytest.approx(0.0)  # log10(1)
    assert contour.data[0].zmax == pytest.approx(np.log10(20)) and "α" in contour.layout.xaxis.title.text
    assert contour.data[1].x == (0.0,)  # the origin marker
    # colour-bar ticks at round losses, as a slide writes them (they read 5.26e+07 / 7.33e+05)
    assert contour.data[0].colorbar.ticktext == ("0.5", "1", "2", "5", "10", "20")
    wide = figures.landscape_2d_figure(alphas, alphas, z * 1e6, zmin=3e5, zmax=5.3e7)
    assert wide.data[0].colorbar.ticktext == ("10⁶", "10⁷")
    decades = figures.landscape_2d_figure(alphas, alphas, z, zmin=2, zmax=3e9).data[0].colorbar.ticktext
    assert decades == ("10", "10³", "10⁵", "10⁷", "10⁹")  # not "1,000" among powers of ten
    assert not any("e+" in t for t in wide.data[0].colorbar.ticktext)
    linear = figures.landscape_2d_figure(alphas, alphas, z, log_z=False)
    assert linear.data[0].z[0][0] == pytest.approx(z[0, 0])
    surface = figures.landscape_2d_figure(alphas, alphas, z, surface=True)
    assert isinstance(surface.data[0], go.Surface) and surface.layout.scene.xaxis.title.text.startswith("α")
    with pytest.raises(ValueError):
        figures.landscape_2d_figure(alphas, alphas[:3], z)


def test_shattering_figures():
    rng = np.random.default_rng(0)
    lags = np.arange(5)
    smooth = {"t": np.linspace(-1, 1, 16), "signal": np.sin(np.linspace(0, 3, 16)), "lags": lags,
              "autocorrelation": np.linspace(1, 0.6, 5), "gradient_cosine": np.linspace(1, 0.8, 5)}
    noisy = {"t": np.linspace(-1, 1, 16), "signal": rng.normal(size=16), "lags": lags,
             "autocorrelation": np.r_[1, rng.normal(0, 0.1, 4)], "gradient_cosine": np.r_[1, np.zeros(4)]}
    series = [S("resnet-56", smooth, True, 56), S("plain-56", noisy, False, 56)]
    auto = figures.shattering_figure(series, "autocorrelation")
    assert list(auto.data[0].x) == list(lags) and auto.layout.yaxis.range == (-1.05, 1.05)
    assert not auto.layout.annotations and auto.data[-1].name == "uncorrelated (white noise)"  # not on the lines
    cos = figures.shattering_figure(series, "cosine")
    assert list(cos.data[1].y) == [1, 0, 0, 0, 0]
    sig = figures.shattering_figure(series, "signal")
    assert len(sig.data) == 2 and sig.data[1].yaxis == "y2"
    assert np.std(sig.data[1].y) == pytest.approx(1.0)  # standardised
    with pytest.raises(ValueError):
        figures.shattering_figure(series, "spectrum")


def test_dead_relu_figure():
    data = [("stem.relu", 0.0), ("stage1.block1.relu1", 0.25), ("stage1.block1.relu_out", 1.0)]
    fig = figures.dead_relu_figure([S("plain-8", data, False, 8)])
    assert list(fig.data[0].y) == [0, 25, 100] and list(fig.data[0].customdata) == [n for n, _ in data]
    assert "%" in fig.layout.yaxis.title.text


def test_the_family_comes_from_the_series_not_the_label():
    data = [("stem.relu", 0.0), ("fc.relu", 0.5)]
    assert figures.dead_relu_figure([S("foo", data, True, 8)]).data[0].line.color == figures.RESIDUAL_COLOR
    page_dict = {"label": "resnet-8", "data": data, "residual": False, "depth": 8}  # what the Analyses page passes
    fig = figures.dead_relu_figure([page_dict])
    assert fig.data[0].line.color == figures.PLAIN_COLOR and fig.data[0].line.dash == "dash"


def shatter_result(auto1, cos1, far):
    return {"lags": np.arange(5), "autocorrelation": np.array([1, auto1, 0.5, 0.3, 0.1]),
            "gradient_cosine": np.array([1, cos1, 0.9, 0.8, far])}


def test_shattering_headline_is_the_number_that_differs():
    trained = [figures.shattering_numbers(shatter_result(0.82, 0.9997, 0.996)),
               figures.shattering_numbers(shatter_result(0.97, 0.998, 0.97))]
    assert trained[0] == {"autocorrelation_1": 0.82, "neighbour_cosine": 0.9997, "far_cosine": 0.996, "far_lag": 4}
    assert figures.shattering_headline(trained) == "autocorrelation_1"  # 0.9997 vs 0.998 would say "no difference"
    fresh = [figures.shattering_numbers(shatter_result(0.01, 0.004, 0.0)),
             figures.shattering_numbers(shatter_result(0.86, 0.97, 0.66))]
    assert figures.shattering_headline(fresh) == "neighbour_cosine"
    assert figures.shattering_headline(fresh[:1]) == "autocorrelation_1"  # one model: what the chart shows
    assert "{lag}" in figures.SHATTER_MEASURES["far_cosine"][0]


def test_dead_relu_takeaway_follows_the_numbers():
    healthy = [S("plain-20", [("a", 0.0), ("b", 0.004)], False, 20), S("resnet-20", [("a", 0.0), ("b", 0.0)], True, 20)]
    assert "do not explain a difference" in figures.dead_relu_takeaway(healthy)
    sick = [S("plain-56", [("stem.relu", 0.1), ("stage1.block1.relu1", 1.0)], False, 56),
            S("resnet-56", [("stem.relu", 0.02), ("stage1.block1.relu1", 0.04)], True, 56)]
    text = figures.dead_relu_takeaway(sick)
    assert text.startswith("**Takeaway.**") and "**plain-56**: 55.0%" in text and "`stage1.block1.relu1` (100%)" in text
    assert "1 ReLU layer entirely dead — nothing passes through" in text and "lost more of its units" in text
    sick[1] = S("resnet-56", [("stem.relu", 0.9), ("stage1.block1.relu1", 1.0)], True, 56)
    assert "the ResNet has more dead units" in figures.dead_relu_takeaway(sick)
    assert "shortcuts carry the signal around them" in figures.dead_relu_takeaway(sick)
