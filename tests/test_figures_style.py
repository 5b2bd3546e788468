"""Presentation mode's version of every kind of figure (`for_projector`): legends under the plot, tick labels of at
least 16 px in dark grey on every axis and colour bar, the original left as it is."""
import numpy as np
import pytest

from figure_fixtures import four_runs
from resnet_viz import figures
from resnet_viz.figures import AnalysisSeries as S
from resnet_viz.figures.style import PRESENTATION_INK


def axes(layout) -> list:
    found = [layout[k] for k in layout if k.startswith(("xaxis", "yaxis"))]
    for scene in (layout[k] for k in layout if k.startswith("scene")):
        found += [scene["xaxis"], scene["yaxis"], scene["zaxis"]]
    return found


def every_kind_of_figure():
    runs = four_runs()
    alphas = np.linspace(-1, 1, 5)
    z = 1 + alphas[None, :] ** 2 + 2 * alphas[:, None] ** 2
    return {
        "training curves": figures.training_curves(runs),
        "Fig. 6 (two panels)": figures.fig6_error_curves(runs),
        "heatmap (colour bar)": figures.grad_norm_heatmap(runs[0].metrics["grad_norms"],
                                                          runs[0].metrics["grad_norm_step"], runs[0].layer_names),
        "landscape map (colour bar)": figures.landscape_2d_figure(alphas, alphas, z, title="resnet-20"),
        "landscape surface (3-D)": figures.landscape_2d_figure(alphas, alphas, z, surface=True),
        "branch ratios (bars)": figures.branch_ratio_figure([S("resnet-20", [("stage1.block1", 0.4)], True, 20)]),
    }


@pytest.mark.parametrize("name", list(every_kind_of_figure()))
def test_for_projector_makes_every_axis_readable_from_the_back_row(name):
    fig = every_kind_of_figure()[name]
    before = fig.to_plotly_json()
    big = figures.for_projector(fig).to_plotly_json()
    layout = big["layout"]
    assert axes(layout)
    for axis in axes(layout):
        assert axis["tickfont"]["size"] >= 16 and axis["tickfont"]["color"] == PRESENTATION_INK
        assert axis["title"]["font"]["size"] >= 16 and axis["title"]["font"]["color"] == PRESENTATION_INK
    for trace in big["data"]:
        if "colorbar" in trace:
            assert trace["colorbar"]["tickfont"]["size"] >= 16
            assert trace["colorbar"]["tickfont"]["color"] == PRESENTATION_INK
    assert layout["font"]["color"] == PRESENTATION_INK
    for note in layout.get("annotations", []):  # grey notes (an lr drop, a reference line's name) turn dark grey
        assert (note.get("font") or {}).get("color") in (None, PRESENTATION_INK)
    assert fig.to_plotly_json() == before  # the page's own figure is untouched


@pytest.mark.parametrize("name", ["training curves", "Fig. 6 (two panels)", "branch ratios (bars)"])
def test_for_projector_puts_the_legend_under_the_plot_in_rows(name):
    big = figures.for_projector(every_kind_of_figure()[name])
    legend = big.layout.legend
    assert legend.orientation == "h" and legend.yref == "container" and legend.y == 0 and legend.yanchor == "bottom"
    assert legend.font.size >= 16 and legend.groupclick == "togglegroup"  # what base_layout set is kept


def test_log_axes_label_only_their_decades_on_a_projector():
    """A log axis spanning a decade or two labels its 2s and 5s at 3/4 size (13.5 px on a projector), however they
    are written: only the decades are labelled, full size (the gridlines stay)."""
    fig = figures.training_curves(four_runs(), log_y=True)
    assert figures.for_projector(fig).layout.yaxis.minorloglabels == "none"
    assert figures.for_projector(fig).layout.xaxis.minorloglabels is None  # a linear axis is left alone


def test_only_grey_notes_turn_dark():
    from resnet_viz.figures.style import _light_grey
    assert _light_grey("#777777") and _light_grey("#999") and not _light_grey("#333333")
    assert not _light_grey("#d62728") and not _light_grey("rgba(0,0,0,0.5)") and not _light_grey(None)


def test_the_legend_rows_and_slanted_labels_get_room_of_their_own():
    """On a projector the legend goes under the plot: the figure grows by its entries (and by slanted tick labels),
    so the plot keeps its height — the lesion chart's plot had shrunk to a strip."""
    figs = every_kind_of_figure()
    curves, heatmap = figs["training curves"], figs["heatmap (colour bar)"]
    entries = sum(1 for t in curves.data if t.showlegend is not False)
    assert figures.for_projector(curves).layout.height == int(curves.layout.height * 1.3) + 16 * entries
    assert figures.for_projector(heatmap).layout.height == int(heatmap.layout.height * 1.3)  # no legend
    bars = figs["branch ratios (bars)"]  # a run and the line at 1 in the legend, slanted block names
    assert figures.for_projector(bars).layout.height == int(bars.layout.height * 1.3) + 16 * 2 + 60


def test_a_figure_without_a_legend_gets_none():
    fig = figures.landscape_2d_figure(np.linspace(-1, 1, 3), np.linspace(-1, 1, 3), np.ones((3, 3)))
    assert fig.layout.showlegend is False
    assert figures.for_projector(fig).layout.legend.orientation is None


def test_a_long_title_goes_on_two_lines_on_a_projector():
    """The branch-ratio title was cut at the chart's edge in presentation mode (plotly does not wrap titles)."""
    fig = figures.branch_ratio_figure([S("resnet-20", [("stage1.block1", 0.4)], True, 20)])
    assert "<br>" not in fig.layout.title.text
    big = figures.for_projector(fig)
    assert big.layout.title.text == \
        "How much each residual block changes what passes through it:<br>‖F(x)‖ / ‖shortcut(x)‖"
    assert big.layout.margin.t == fig.layout.margin.t * 1.6 + 30  # room for the second line above the plot
    from resnet_viz.figures.style import wrap_title
    assert wrap_title("Training error (dashed) and test error (bold) — paper Fig. 6 style") == \
        "Training error (dashed) and test error (bold) —<br>paper Fig. 6 style"
    assert wrap_title("resnet-56: ‖F(x)‖ / ‖shortcut(x)‖ per block during training") == \
        "resnet-56: ‖F(x)‖ / ‖shortcut(x)‖<br>per block during training"  # near the middle, no orphan word
    assert wrap_title("plain-56 — 56 weight layers: no shortcuts") == "plain-56 — 56 weight layers: no shortcuts"
