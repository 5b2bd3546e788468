"""Training curves and the paper's Fig. 6, on synthetic run metrics."""
import numpy as np
import plotly.graph_objects as go
import pytest

from figure_fixtures import fake_metrics, fake_run, four_runs
from resnet_viz import figures
from resnet_viz.config import PAPER_TABLE6_ERROR
from resnet_viz.figures import RunSeries


@pytest.fixture(scope="module")
def runs():
    return four_runs()


def test_training_curves(runs):
    fig = figures.training_curves(runs, metric="loss", smoothing=0.9)
    assert isinstance(fig, go.Figure)
    names = [t.name for t in fig.data]
    for r in runs:
        assert r.label in names  # the smoothed batch curve carries the run's one legend entry
        assert f"{r.label} · train set" in names and f"{r.label} · test set" in names
    # a short legend: one entry per run, then a grey key to the line styles (a legend beside the plot took 40% of it)
    legend = [t.name for t in fig.data if t.showlegend is not False]
    assert legend == [r.label for r in runs] + ["batches (EMA 0.9)", "train set (evaluations)",
                                                 "test set (evaluations)"]
    key = [t for t in fig.data if t.legendgroup.startswith("key")]
    assert all(t.x == (None,) and t.line.color == "#888888" for t in key)
    assert next(t for t in key if t.name.startswith("train")).line.dash == "dot"
    assert fig.layout.yaxis.type == "linear" and "iteration" in fig.layout.xaxis.title.text
    err = figures.training_curves(runs[:1], metric="error", log_y=True, show_raw=False)
    assert err.layout.yaxis.type == "log"
    test_trace = next(t for t in err.data if t.name.endswith("test set"))
    assert np.allclose(test_trace.y, runs[0].metrics["test_error"] * 100)  # percent
    assert len([t for t in err.data if not t.legendgroup.startswith("key")]) == 3  # EMA + train + test, no raw
    with pytest.raises(ValueError):
        figures.training_curves(runs, metric="accuracy")


def test_training_curves_thin_long_runs():
    m = fake_metrics(3, steps=20_000, evals=3)
    fig = figures.training_curves([RunSeries("plain-8", m, [], residual=False, depth=8)], smoothing=0.9)
    assert all(len(t.x) <= figures.MAX_LINE_POINTS + 1 for t in fig.data)


def test_fig6_error_curves(runs):
    fig = figures.fig6_error_curves(runs)
    assert fig.layout.annotations[0].text == "plain networks"
    by_name = {t.name: t for t in fig.data}
    assert by_name["plain-56"].xaxis == "x" and by_name["resnet-56"].xaxis == "x2"  # the test errors
    assert by_name["plain-56 train"].line.dash == "dash" and by_name["plain-56"].line.width > \
        by_name["plain-56 train"].line.width
    assert by_name["plain-20"].line.color == by_name["plain-20 train"].line.color  # colour = the run
    assert [t.name for t in fig.data if t.showlegend is not False] == \
        [r.label for r in runs] + ["training error", "test error"]  # one entry per run, a key to the styles
    # Table 6 reference lines in the residual panel only, for the depths present
    refs = [t for t in fig.data if t.name.startswith("paper ResNet")]
    assert {t.name for t in refs} == {f"paper ResNet-20: {PAPER_TABLE6_ERROR[20]:.2f}%",
                                     f"paper ResNet-56: {PAPER_TABLE6_ERROR[56]:.2f}%"}
    assert all(t.xaxis == "x2" and t.line.dash == "dot" for t in refs)
    assert all("full 64k-iteration training" in t.hovertemplate for t in refs)
    assert float(refs[1].y[0]) == PAPER_TABLE6_ERROR[56]
    assert fig.layout.yaxis.type == "linear"
    assert figures.fig6_error_curves(runs, log_y=True).layout.yaxis.type == "log"


def test_fig6_without_a_paper_depth_has_no_reference():
    fig = figures.fig6_error_curves([fake_run(residual=True, depth=8)])
    assert not [t for t in fig.data if t.name.startswith("paper")]


def test_table6_marks_share_one_label_block_in_line_order(runs):
    fig = figures.fig6_error_curves(runs)
    [labels] = [a for a in fig.layout.annotations if "Table 6" in a.text]
    assert labels.text.index("ResNet-20: 8.75%") < labels.text.index("ResNet-56: 6.97%")  # top line first
    assert labels.y == PAPER_TABLE6_ERROR[20] and labels.yanchor == "bottom"  # above the highest mark
    log = figures.fig6_error_curves(runs, log_y=True)
    assert [a for a in log.layout.annotations if "Table 6" in a.text][0].y == pytest.approx(np.log10(8.75))


def test_eval_loss_spike_is_found_and_explained():
    m = fake_metrics(3, steps=60, evals=6)
    assert figures.eval_loss_spike(m) is None  # evaluations close to the batches
    assert figures.eval_spike_note([RunSeries("plain-56", m, [], residual=False, depth=56)]) is None
    m["test_loss"] = m["test_loss"].copy()
    m["test_loss"][1] = 1.2e5  # BN's running statistics lag in eval mode
    spike = figures.eval_loss_spike(m)
    assert spike["step"] == int(m["eval_step"][1]) and spike["split"] == "test" and spike["eval_loss"] == 1.2e5
    assert 1.5 < spike["batch_loss"] < 2.5
    note = figures.eval_spike_note([RunSeries("plain-56", m, [], residual=False, depth=56),
                                    fake_run(residual=True, depth=20)])
    assert "**plain-56**'s evaluation loss reaches 1.2×10⁵" in note and "resnet-20" not in note
    assert "running averages" in note


def test_spike_note_numbers_read_like_a_slide():
    m = fake_metrics(3, steps=60, evals=6)
    m["test_loss"] = m["test_loss"].copy()
    m["test_loss"][0] = 3540.0
    note = figures.eval_spike_note([RunSeries("resnet-56", m, [], residual=True, depth=56)])
    assert "reaches 3,540 on the test subset at step 0" in note


def spiking_runs() -> list[RunSeries]:
    """plain-56 with one evaluation in eval mode at 1.3×10⁵ (as a real brief run showed), and a quiet resnet-56."""
    m = fake_metrics(3, steps=60, evals=6)
    m["test_loss"], m["train_loss"] = m["test_loss"].copy(), m["train_loss"].copy()
    m["test_loss"][4], m["train_loss"][4] = 1.3e5, 9.1e4
    return [RunSeries("plain-56", m, [], residual=False, depth=56), fake_run(residual=True, depth=56)]


@pytest.mark.parametrize("log_y", [False, True])
def test_an_eval_loss_spike_leaves_the_training_curves_readable_and_stays_marked(log_y):
    runs = spiking_runs()
    fig = figures.training_curves(runs, metric="loss", log_y=log_y)
    lo, hi = fig.layout.yaxis.range
    if log_y:
        lo, hi = 10 ** lo, 10 ** hi
    assert fig.layout.yaxis.autorange is False
    assert hi < 5 and lo < 0.6  # every batch curve and every ordinary evaluation fits; the spike does not
    span = (np.log10(hi) - np.log10(lo)) if log_y else hi - lo
    for t in (t for t in fig.data if t.name in ("plain-56", "resnet-56")):  # the smoothed batch curves fill the
        # chart, not its bottom tenth
        y = np.asarray(t.y, dtype=float)
        used = (np.log10(np.nanmax(y)) - np.log10(np.nanmin(y))) if log_y else np.nanmax(y) - np.nanmin(y)
        assert used / span > 0.5
    marks = {t.name: t for t in fig.data if "above the chart" in t.name and not t.legendgroup.startswith("key")}
    assert set(marks) == {"plain-56 · train set above the chart ▲ (up to 9.1×10⁴)",
                          "plain-56 · test set above the chart ▲ (up to 1.3×10⁵)"}
    mark = marks["plain-56 · test set above the chart ▲ (up to 1.3×10⁵)"]
    assert list(mark.x) == [int(runs[0].metrics["eval_step"][4])] and mark.cliponaxis is False
    assert mark.marker.symbol == "triangle-up" and mark.legendgroup == "plain-56"
    assert float(mark.customdata[0]) == 1.3e5 and "above the top of this chart" in mark.hovertemplate
    edge = fig.layout.yaxis.range[1]
    assert float(mark.y[0]) == pytest.approx(10 ** edge if log_y else edge)  # on the top edge
    # the evaluation's own line keeps its true value: it leaves through the top of the chart
    assert float(np.max(next(t for t in fig.data if t.name == "plain-56 · test set").y)) == 1.3e5
    assert fig.layout.meta["off_the_chart"] == 2
    assert [t.name for t in fig.data if t.showlegend is not False][-1] == "evaluation above the chart (up to 1.3×10⁵)"


def test_an_evaluation_a_few_times_the_batches_is_off_the_chart_too():
    """A brief ResNet-56's test loss at 7× its batches' (a real run: 21 against 3): below the note's factor 10, but it
    would still squash the batches into the bottom tenth."""
    m = fake_metrics(3, steps=60, evals=6)
    m["test_loss"] = m["test_loss"].copy()
    m["test_loss"][2] = 12.0  # batches at about 1.7 then
    fig = figures.training_curves([RunSeries("resnet-56", m, [], residual=True, depth=56)])
    assert fig.layout.yaxis.range[1] < 3 and fig.layout.meta["off_the_chart"] == 1
    assert figures.eval_loss_spike(m) is None  # no BatchNorm story to tell for it


def test_without_a_spike_the_loss_axis_ranges_itself():
    fig = figures.training_curves(four_runs(), metric="loss")
    assert fig.layout.yaxis.range is None and not [t for t in fig.data if "above the chart" in t.name]
    errors = figures.training_curves(spiking_runs(), metric="error")  # error is bounded: nothing to clip
    assert errors.layout.yaxis.range is None
