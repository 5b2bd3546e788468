"""The figure builders: each returns a go.Figure with the expected traces and axes, on synthetic run metrics."""
import math

import numpy as np
import plotly.graph_objects as go
import pytest

from resnet_viz import plots
from resnet_viz.config import PAPER_TABLE6_ERROR, ModelConfig
from resnet_viz.models import ResNet, layer_names, model_summary, shortcut_kind


def cifar_layer_names(depth: int) -> list[str]:
    return layer_names(ResNet(ModelConfig(depth=depth).validate()))


def fake_metrics(n_layers: int, steps: int = 50, evals: int = 6, seed: int = 0, scale: float = 1.0) -> dict:
    rng = np.random.default_rng(seed)
    step = np.arange(steps)
    lr = np.where(step < steps // 2, 0.1, 0.01).astype(np.float32)
    es = np.linspace(0, steps - 1, evals).astype(int)
    return {
        "step": step,
        "loss": np.linspace(2.3, 0.5, steps, dtype=np.float32) + 0.05 * rng.standard_normal(steps).astype(np.float32),
        "batch_error": np.linspace(0.9, 0.2, steps, dtype=np.float32),
        "lr": lr,
        "grad_norm_step": step,
        "grad_norms": (scale * 10 ** rng.uniform(-3, 0, (steps, n_layers))).astype(np.float32),
        "eval_step": es,
        "train_loss": np.linspace(2.3, 0.6, evals, dtype=np.float32),
        "train_error": np.linspace(0.9, 0.25, evals, dtype=np.float32),
        "test_loss": np.linspace(2.3, 0.8, evals, dtype=np.float32),
        "test_error": np.linspace(0.9, 0.3, evals, dtype=np.float32),
    }


@pytest.fixture(scope="module")
def runs():
    out = []
    for i, (kind, depth) in enumerate([("plain", 20), ("plain", 56), ("resnet", 20), ("resnet", 56)]):
        names = cifar_layer_names(depth)
        out.append(plots.RunData(f"{kind}-{depth}", fake_metrics(len(names), seed=i), names))
    return out


# ------------------------------------------------------------------------------------------------ helpers ----
def test_run_data_reads_family_and_depth_from_the_label():
    r = plots.RunData("resnet-110 (no BN)", {})
    assert r.residual is True and r.depth == 110
    p = plots.as_run({"label": "plain-56", "metrics": {}, "layer_names": ["a", "b"]})
    assert p.residual is False and p.depth == 56
    assert plots.as_run(("plain-20", {}, [])).depth == 20


def test_store_runs_are_understood():
    class Model:
        residual, depth = True, 32

    class Config:
        model = Model()

    class StoreRun:
        label, metrics, layer_names, config = "resnet-32", {"step": np.arange(3)}, ["x"], Config()

    r = plots.as_run(StoreRun())
    assert (r.label, r.residual, r.depth, r.layer_names) == ("resnet-32", True, 32, ["x"])


def test_colours_warm_for_plain_cool_for_residual_darker_when_deeper(runs):
    colors = plots.run_colors(runs)
    assert len(set(colors)) == 4

    def rgb(c):
        return [int(v) for v in c[c.index("(") + 1:-1].split(",")]
    p20, p56, r20, r56 = map(rgb, colors)
    assert p20[0] > p20[2] and p56[0] > p56[2]  # warm: more red than blue
    assert r20[2] > r20[0] and r56[2] > r56[0]  # cool: more blue than red
    assert sum(p56) < sum(p20) and sum(r56) < sum(r20)  # deeper = darker
    assert plots.run_colors([runs[0]]) == [plots.PLAIN_COLOR]


def test_ema_is_bias_corrected_and_skips_gaps():
    assert np.allclose(plots.ema(np.full(10, 3.0), 0.9), 3.0)  # no warm-up bias towards 0
    y = plots.ema([1.0, np.nan, 1.0, 5.0], 0.5)
    assert math.isnan(y[1]) and y[2] == 1.0 and 1.0 < y[3] < 5.0
    assert np.array_equal(plots.ema([1.0, 2.0], 0.0), [1.0, 2.0])


def test_first_last_ratio_uses_the_last_conv_before_fc_and_skips_shortcuts():
    names = ["stem.conv", "stage1.block1.conv1", "stage1.block1.conv2", "stage1.block1.shortcut.conv", "fc"]
    g = np.array([[1.0, 9.0, 4.0, 100.0, 7.0],
                  [2.0, 9.0, 8.0, 100.0, 7.0],
                  [3.0, 9.0, 0.0, 100.0, 7.0]])
    assert plots.last_conv_index(names, 5) == 2
    r = plots.first_last_ratio(g, names)
    assert r[0] == pytest.approx(0.25) and r[1] == pytest.approx(0.25)
    assert math.isnan(r[2])  # division by a zero norm is undefined, not inf
    assert plots.first_last_ratio(g)[0] == pytest.approx(1 / 100)  # no names: the layer before the last


def test_lr_drops_are_found():
    m = {"step": np.arange(8), "lr": np.array([0.1] * 4 + [0.01] * 2 + [0.001] * 2)}
    assert plots.lr_drop_steps(m) == [4, 6]
    assert plots.lr_drop_steps({"step": np.arange(3), "lr": np.full(3, 0.1)}) == []
    # the smooth tail of a one-cycle schedule (consecutive ratios > 2 near zero) is not a drop
    from resnet_viz.config import TrainConfig
    from resnet_viz.trainer import lr_at
    cfg = TrainConfig(lr=0.05, schedule="onecycle")
    assert plots.lr_drop_steps({"step": np.arange(124), "lr": np.array([lr_at(i, 124, cfg) for i in range(124)])}) == []


def test_spans_decades():
    assert plots.spans_decades([np.array([2.3, 1.7]), np.array([3.4e6])])
    assert not plots.spans_decades([np.array([2.3, 1.7, np.nan, 0.0, -1.0]), None])
    assert not plots.spans_decades([])


# ------------------------------------------------------------------------------------------------- curves ----
def test_training_curves(runs):
    fig = plots.training_curves(runs, metric="loss", smoothing=0.9)
    assert isinstance(fig, go.Figure)
    names = [t.name for t in fig.data]
    for r in runs:
        assert f"{r.label} · batches (EMA 0.9)" in names
        assert f"{r.label} · train set" in names and f"{r.label} · test set" in names
    assert fig.layout.yaxis.type == "linear" and "iteration" in fig.layout.xaxis.title.text
    err = plots.training_curves(runs[:1], metric="error", log_y=True, show_raw=False)
    assert err.layout.yaxis.type == "log"
    test_trace = next(t for t in err.data if t.name.endswith("test set"))
    assert np.allclose(test_trace.y, runs[0].metrics["test_error"] * 100)  # percent
    assert len(err.data) == 3  # EMA + train + test, no raw trace
    with pytest.raises(ValueError):
        plots.training_curves(runs, metric="accuracy")


def test_training_curves_thin_long_runs():
    m = fake_metrics(3, steps=20_000, evals=3)
    fig = plots.training_curves([plots.RunData("plain-8", m)], smoothing=0.9)
    assert all(len(t.x) <= plots.MAX_LINE_POINTS + 1 for t in fig.data)


def test_fig6_error_curves(runs):
    fig = plots.fig6_error_curves(runs)
    assert fig.layout.annotations[0].text == "plain networks"
    by_name = {t.name: t for t in fig.data}
    assert by_name["plain-56 test"].xaxis == "x" and by_name["resnet-56 test"].xaxis == "x2"
    assert by_name["plain-56 train"].line.dash == "dash" and by_name["plain-56 test"].line.width > \
        by_name["plain-56 train"].line.width
    assert by_name["plain-20 test"].line.color == by_name["plain-20 train"].line.color  # colour = depth
    # Table 6 reference lines in the residual panel only, for the depths present
    refs = [t for t in fig.data if t.name.startswith("paper ResNet")]
    assert {t.name for t in refs} == {f"paper ResNet-20: {PAPER_TABLE6_ERROR[20]:.2f}%",
                                     f"paper ResNet-56: {PAPER_TABLE6_ERROR[56]:.2f}%"}
    assert all(t.xaxis == "x2" and t.line.dash == "dot" for t in refs)
    assert all("full 64k-iteration training" in t.hovertemplate for t in refs)
    assert float(refs[1].y[0]) == PAPER_TABLE6_ERROR[56]
    assert fig.layout.yaxis.type == "linear"
    assert plots.fig6_error_curves(runs, log_y=True).layout.yaxis.type == "log"


def test_fig6_without_a_paper_depth_has_no_reference():
    names = cifar_layer_names(8)
    fig = plots.fig6_error_curves([plots.RunData("resnet-8", fake_metrics(len(names)), names)])
    assert not [t for t in fig.data if t.name.startswith("paper")]


# ------------------------------------------------------------------------------------------ gradient norms ----
def test_heatmap_uses_a_log_colour_scale_with_real_value_ticks():
    names = cifar_layer_names(20)
    g = np.tile(np.logspace(-4, 0, len(names)), (30, 1))
    fig = plots.grad_norm_heatmap(g, np.arange(30), names, "plain-20", zmin=1e-4, zmax=1.0)
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
    fig = plots.grad_norm_heatmap(g, np.arange(1000), ["a", "b", "c", "d", "e"])
    z = np.asarray(fig.data[0].z)
    assert z.shape[1] <= 400 and z.shape[0] == 5
    assert np.allclose(z[:, 0], -1.0)
    x = np.asarray(fig.data[0].x)
    assert len(x) == z.shape[1] and np.all(np.diff(x) > 0) and x[0] < 5 and x[-1] > 990
    assert fig.layout.meta["columns"] == z.shape[1]


def test_heatmap_handles_zeros_and_many_layers():
    g = np.random.default_rng(0).random((3000, 600))
    g[:, 7] = 0.0  # a dead layer: log10 undefined, shown as a gap
    fig = plots.grad_norm_heatmap(g, np.arange(3000), [f"l{i}" for i in range(600)])
    z = np.asarray(fig.data[0].z)
    assert z.shape == (600, 400) and np.isnan(z[7]).all()


def test_shared_color_range_covers_both_runs():
    a = np.full((4, 3), 1e-3)
    b = np.full((4, 3), 10.0)
    lo, hi = plots.shared_color_range(a, b, percentiles=(0, 100))
    assert lo == pytest.approx(1e-3) and hi == pytest.approx(10.0)
    assert plots.shared_color_range(np.zeros((2, 2))) == (1e-3, 1.0)


def test_log_ticks_within_a_decade():
    vals, text = plots.log_ticks(math.log10(2e-3), math.log10(9e-3))
    assert text == ["2e-3", "5e-3"] and vals[0] == pytest.approx(math.log10(2e-3))


def test_grad_norm_profiles(runs):
    pair = [runs[1], runs[3]]
    fig = plots.grad_norm_profiles(pair, steps_to_show=[0, 25, 49])
    assert len(fig.data) == 6 and fig.layout.yaxis.type == "log"
    assert [t.line.dash for t in fig.data[:3]] == ["solid", "dash", "dot"]  # dash = step
    assert fig.data[0].line.color == fig.data[1].line.color != fig.data[3].line.color  # colour = run
    assert np.allclose(fig.data[2].y, runs[1].metrics["grad_norms"][49])
    assert list(fig.data[0].customdata) == runs[1].layer_names  # hover names the layer
    assert len(plots.grad_norm_profiles(pair).data) == 6  # default: first, middle, last
    rel = plots.grad_norm_profiles(pair, steps_to_show=[0], relative_depth=True, log_y=False)
    assert rel.data[0].x[-1] == pytest.approx(1.0) and rel.layout.yaxis.type == "linear"


def test_profiles_drop_projection_shortcuts_so_twins_line_up():
    names = layer_names(ResNet(ModelConfig(depth=20, shortcut="B").validate()))
    assert sum("shortcut" in n for n in names) == 2
    fig = plots.grad_norm_profiles([plots.RunData("resnet-20", fake_metrics(len(names)), names)], [0])
    assert len(fig.data[0].y) == 20


def test_first_last_ratio_figure(runs):
    fig = plots.first_last_ratio_figure(runs)
    assert [t.name for t in fig.data] == [r.label for r in runs]
    assert fig.layout.yaxis.type == "log"
    expected = plots.first_last_ratio(runs[0].metrics["grad_norms"], runs[0].layer_names)
    assert np.allclose(fig.data[0].y, expected)
    assert any(s.y0 == 1 for s in fig.layout.shapes)  # the "equal" line


# ----------------------------------------------------------------------------------------- architecture ----
def test_summary_table_and_totals():
    s = model_summary(ModelConfig(depth=20))
    rows = plots.summary_table(s)
    assert len(rows) == 20 and rows[0]["layer"] == "stem.conv" and rows[-1]["layer"] == "fc"
    assert [r["#"] for r in rows] == list(range(1, 21))
    assert rows[0]["output"] == "16×32×32" and rows[0]["params"] == 432
    assert set(rows[0]) == {"#", "layer", "kind", "output", "params", "MACs"}
    assert len(plots.summary_table(s, weight_layers_only=False)) == len(s["layers"])
    t = plots.summary_totals(s)
    assert t["params"] == s["total_params"] and t["weight_layers"] == 20 and t["params_h"] == "269.72K"
    assert isinstance(plots.summary_table_figure(s), go.Figure)


@pytest.mark.parametrize("cfg", [ModelConfig(depth=20), ModelConfig(depth=20, shortcut="B"),
                                 ModelConfig(depth=20, shortcut="C"), ModelConfig(family="imagenet", depth=50),
                                 ModelConfig(depth=20, residual=False)])
def test_layout_matches_the_built_model(cfg):
    layout = plots.architecture_layout(model_summary(cfg))
    blocks = [b for st in layout["stages"] for b in st["blocks"]]
    built = ResNet(cfg.validate()).blocks()
    assert [f"{b['stage']}.{b['name']}" for b in blocks] == [name for name, _ in built]
    assert [b["article_kind"] for b in blocks] == [m.article_kind for _, m in built]
    assert [b["shortcut"] for b in blocks] == [shortcut_kind(m.shortcut) for _, m in built]


def arc_traces(fig):
    return [t for t in fig.data if isinstance(t.meta, dict) and t.meta.get("role") == "shortcut"]


def test_diagram_has_arcs_for_residual_and_none_for_plain():
    res = plots.architecture_diagram(ModelConfig(depth=20))
    assert res.layout.meta["arcs"] == 9
    kinds = {t.meta["kind"] for t in arc_traces(res)}
    assert kinds == {"identity", "zero-pad"}
    assert next(t for t in arc_traces(res) if t.meta["kind"] == "zero-pad").line.dash == "dash"
    plain = plots.architecture_diagram(ModelConfig(depth=20, residual=False))
    assert plain.layout.meta["arcs"] == 0 and not arc_traces(plain)
    assert plain.layout.meta["nodes"] == res.layout.meta["nodes"]  # the same column, minus the arcs


def test_projection_arcs_are_labelled():
    fig = plots.architecture_diagram(ModelConfig(depth=20, shortcut="B"))
    proj = next(t for t in arc_traces(fig) if t.meta["kind"] == "projection")
    assert proj.line.dash == "solid"
    labels = [t for t in fig.data if t.name == "shortcut labels"][0]
    assert list(labels.text) == ["1×1 conv", "1×1 conv"]


def test_collapsed_stages():
    cfg = ModelConfig(depth=110)  # 18 blocks per stage: collapsed by default
    summary = model_summary(cfg)
    assert plots.auto_collapsed_stages(summary) == {"stage1", "stage2", "stage3"}
    auto = plots.architecture_diagram(summary)
    # input, stem, 3 stage boxes, pool, fc, output
    assert auto.layout.meta["nodes"] == 8 and auto.layout.meta["collapsed"] == ["stage1", "stage2", "stage3"]
    assert auto.layout.meta["arcs"] == 3
    labels = [t for t in auto.data if t.name == "labels"][0].text
    assert "<b>stage2: 18 blocks, 32 ch, /2</b>" in labels
    one = plots.architecture_diagram(summary, {"stage2"})
    assert one.layout.meta["nodes"] == 8 - 2 + 18 + 18 and one.layout.meta["collapsed"] == ["stage2"]
    none = plots.architecture_diagram(summary, False)
    assert none.layout.meta["nodes"] == 5 + 54 and none.layout.meta["arcs"] == 54
    assert plots.architecture_diagram(ModelConfig(depth=20), True).layout.meta["nodes"] == 8


def test_a_very_long_expanded_stage_is_elided():
    summary = model_summary(ModelConfig(depth=1202))
    fig = plots.architecture_diagram(summary, {"stage1", "stage3"})
    n = fig.layout.meta["nodes"]
    assert n < 20  # 200 blocks of stage2 are drawn as 4 + "…" + 2
    labels = [t for t in fig.data if t.name == "labels"][0].text
    assert any("194 more identity blocks" in str(s) for s in labels)


def test_resnet50_diagram_uses_the_article_names():
    fig = plots.architecture_diagram(ModelConfig(family="imagenet", depth=50))
    labels = " ".join(str(s) for s in [t for t in fig.data if t.name == "labels"][0].text)
    for name in ("res2a", "res2c", "res3d", "res4f", "res5c"):
        assert name in labels
    assert "1×1,512 → 3×3,512 → 1×1,2048" in labels  # stage 5: [512, 512, 2048], not the article's 256x256x2048
    assert "global avg-pool" in labels
    hover = " ".join(str(s) for t in fig.data if t.name == "boxes" for s in t.hovertext)
    assert "convolutional block" in hover and "identity block" in hover
    assert fig.layout.meta["arcs"] == 16
    assert "50 weight layers" in fig.layout.title.text


def test_residual_block_diagram():
    fig = plots.residual_block_diagram()
    texts = " ".join(a.text for a in fig.layout.annotations)
    assert "identity block" in texts and "convolutional block" in texts and "F(x) + x" in texts
    assert "1×1 conv" in texts


def test_gradient_flow_finding_follows_the_data():
    names = ["stem.conv", "stage1.block1.conv1", "stage1.block1.conv2", "fc"]
    steps = 20
    even = np.ones((steps, 4))
    f = plots.gradient_flow_finding(even, names, np.linspace(2.3, 1.5, steps))
    assert f["trend"] == "even" and not f["stuck"] and f["ratio_start"] == pytest.approx(1)
    assert "within a factor of ten" in f["sentence"] and "explodes" not in f["sentence"]

    fading = np.ones((steps, 4))
    fading[0, 0] = 500.0  # exploding at initialisation …
    fading[1:, 0] = 0.002  # … then faint at the input end
    stuck_loss = np.full(steps, np.log(10))
    f = plots.gradient_flow_finding(fading, names, stuck_loss)
    assert f["trend"] == "fades" and f["stuck"] and f["ratio_start"] == pytest.approx(500)
    assert f["ratio_end"] == pytest.approx(0.002)
    assert "500×" in f["sentence"] and "1/500" in f["sentence"] and "explodes" in f["sentence"]
    assert "chance level" in f["sentence"]

    growing = np.ones((steps, 4))
    growing[:, 0] = 50.0
    assert plots.gradient_flow_finding(growing, names)["trend"] == "grows"
    nothing = np.full((steps, 4), np.nan)
    assert plots.gradient_flow_finding(nothing, names)["ratio_end"] is None
